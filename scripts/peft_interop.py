"""Interoperability of LoRA adapters with Hugging Face PEFT, both ways (NER).

to-python: an adapter written by `ferrotune train --peft lora` loads in PEFT
  (config = AutoConfig.from_pretrained(adapter); base =
  AutoModelForTokenClassification.from_pretrained(BASE, config=config);
  PeftModel.from_pretrained(base, adapter)) and tags every sentence of a CoNLL
  file as `ferrotune predict --model BASE --adapter ADAPTER` does (number of
  identical tag sequences). With --merged (the output of `ferrotune merge`),
  the merged plain folder loaded by AutoModelForTokenClassification is
  compared with the PeftModel: max abs difference of the word probabilities
  (target 1e-4), tag agreement, the merged weights against PEFT's own
  merge_and_unload, and `ferrotune predict --model MERGED`.

from-python: trains a PEFT LoRA adapter (peft_train.py's recipe: first
  sub-token labelling, AdamW, linear warmup/decay, best dev epoch), saves it
  with config.json (labels) and the tokenizer files, scores the test file with
  seqeval in Python (the saved adapter reloaded from disk) and with
  `ferrotune eval --model BASE --adapter DIR`, and prints both F1s.

Both sides use windows of --max-len 512 tokens at evaluation so that no
sentence is cut. Each subcommand ends with one JSON line of figures ("ok":
whether every check that ran passed; exit code 1 otherwise). A ferrotune
command that fails (e.g. a binary without --adapter yet) is reported in the
figures, with the end of its stderr, and the Python checks still run.

  python scripts/peft_interop.py to-python --base models/all-MiniLM-L6-v2 \\
      --adapter runs/lora/model --data data/ncbi-disease/test.tsv [--merged runs/lora-merged]
  python scripts/peft_interop.py from-python --base models/all-MiniLM-L6-v2 \\
      --data data/ncbi-disease/train.tsv --dev data/ncbi-disease/devel.tsv \\
      --test data/ncbi-disease/test.tsv --out runs/peft-lora [--epochs 4 --lr 1e-3 --r 8 --alpha 16 \\
      --targets query,value] [--no-train: only evaluate the adapter already in --out]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from conll import read_conll
from peft_train import add_train_args, finish_args, ner_word_probs, peak_rss_mb, save_adapter, train_ner
from seqeval.metrics import f1_score

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
PROB_TOLERANCE = 1e-4


def tokenizer_dir(*dirs):
    """The first folder that has tokenizer files (an adapter written by ferrotune carries them)."""
    for d in dirs:
        if any((Path(d) / f).exists() for f in TOKENIZER_FILES):
            return d
    raise SystemExit(f"no tokenizer (tokenizer.json or vocab.txt) in {' or '.join(map(str, dirs))}")


def load_peft(base, adapter):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForTokenClassification
    if not (Path(adapter) / "adapter_config.json").exists():
        raise SystemExit(f"{adapter}: no adapter_config.json (not a PEFT adapter folder)")
    if not (Path(adapter) / "config.json").exists():
        raise SystemExit(f"{adapter}: no config.json with the labels (ferrotune writes one next to the adapter)")
    config = AutoConfig.from_pretrained(adapter)
    model = AutoModelForTokenClassification.from_pretrained(base, config=config)
    return PeftModel.from_pretrained(model, adapter).eval()


def run_ferrotune(binary, args, timeout=3600):
    """(stdout, None) or (None, error text)."""
    if not Path(binary).exists():
        return None, f"{binary} not found (build with cargo build --release)"
    cmd = [binary] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s: {' '.join(cmd)}"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {' '.join(cmd)}: {p.stderr.strip()[-800:]}"
    return p.stdout, None


def ferrotune_tags(a, model_args, sentences):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for words in sentences:
            f.write(json.dumps({"tokens": words}) + "\n")
        inputs = f.name
    try:
        out, err = run_ferrotune(a.ferrotune, ["predict", *model_args, "--input", inputs, "--max-len", a.max_len_eval,
                                               "--threads", a.threads])
    finally:
        os.unlink(inputs)
    if err:
        return None, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(lines) != len(sentences):
        return None, f"ferrotune predict wrote {len(lines)} lines for {len(sentences)} sentences"
    return [r["tags"] for r in lines], None


def compare_tags(ours, theirs):
    same = sum(a == b for a, b in zip(ours, theirs))
    words = sum(len(a) for a in theirs)
    word_same = sum(x == y for a, b in zip(ours, theirs) for x, y in zip(a, b))
    return same, word_same, words


def max_prob_diff(p, q):
    diff = 0.0
    for sp, sq in zip(p, q):
        for wp, wq in zip(sp, sq):
            if wp is not None and wq is not None:
                diff = max(diff, max(abs(x - y) for x, y in zip(wp, wq)))
    return diff


def merged_weight_diff(peft_model, merged_dir):
    """ferrotune's merged weights against PEFT's merge_and_unload of the same adapter."""
    from safetensors.torch import load_file
    files = sorted(Path(merged_dir).glob("*.safetensors"))
    if not files:
        return None, [], []
    theirs = {}
    for f in files:
        theirs.update(load_file(str(f)))
    ours = peft_model.merge_and_unload().state_dict()
    common = sorted(set(ours) & set(theirs))
    diff = max((float((ours[k].float() - theirs[k].float()).abs().max()) for k in common
                if ours[k].shape == theirs[k].shape), default=None)
    shape_mismatch = [k for k in common if ours[k].shape != theirs[k].shape]
    return diff, sorted(set(ours) - set(theirs)), shape_mismatch


def to_python(a):
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    t0 = time.time()
    data = read_conll(a.data)
    words, gold = [s[0] for s in data], [s[1] for s in data]
    model = load_peft(a.base, a.adapter)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(a.adapter, a.base))
    peft_probs, peft_tags = ner_word_probs(model, tokenizer, words, a.max_len_eval)
    fig = {"check": "ferrotune adapter in PEFT", "sentences": len(data), "f1_peft": f1_score(gold, peft_tags)}
    ok = True

    tags, err = ferrotune_tags(a, ["--model", a.base, "--adapter", a.adapter], words)
    if err:
        fig["ferrotune_predict_adapter_error"] = err
        ok = False
    else:
        same, word_same, n_words = compare_tags(tags, peft_tags)
        fig.update(identical_tag_sequences=same, identical_word_tags=word_same, words=n_words,
                   f1_ferrotune_predict_adapter=f1_score(gold, tags))
        ok &= same == len(data)

    if a.merged:
        merged = AutoModelForTokenClassification.from_pretrained(a.merged).eval()
        m_tok = AutoTokenizer.from_pretrained(tokenizer_dir(a.merged, a.adapter, a.base))
        m_probs, m_tags = ner_word_probs(merged, m_tok, words, a.max_len_eval)
        same, word_same, _ = compare_tags(m_tags, peft_tags)
        diff = max_prob_diff(m_probs, peft_probs)
        fig.update(merged_max_abs_prob_diff=diff, merged_identical_tag_sequences=same,
                   merged_identical_word_tags=word_same, f1_merged_transformers=f1_score(gold, m_tags))
        ok &= diff <= PROB_TOLERANCE and same == len(data)
        wdiff, missing, mismatch = merged_weight_diff(model, a.merged)  # merges `model` in place: last use
        fig.update(merged_weights_max_abs_diff_vs_peft_merge=wdiff)
        if missing or mismatch:
            fig.update(merged_missing_tensors=missing, merged_shape_mismatch=mismatch)
            ok = False
        tags, err = ferrotune_tags(a, ["--model", a.merged], words)
        if err:
            fig["ferrotune_predict_merged_error"] = err
            ok = False
        else:
            same, _, _ = compare_tags(tags, peft_tags)
            fig.update(ferrotune_merged_identical_tag_sequences=same,
                       f1_ferrotune_predict_merged=f1_score(gold, tags))
            ok &= same == len(data)
    fig.update(ok=bool(ok), seconds=round(time.time() - t0, 1))
    return fig


def from_python(a):
    t0 = time.time()
    fig = {"check": "PEFT adapter in ferrotune eval"}
    if a.no_train:
        if not (Path(a.out) / "adapter_config.json").exists():
            raise SystemExit(f"--no-train: {a.out} has no adapter_config.json")
    else:
        a.model, a.train = a.base, a.data
        model, tokenizer, train_fig = train_ner(a, log=lambda line: print(line, file=sys.stderr, flush=True))
        save_adapter(model, tokenizer, a.out, "BertForTokenClassification")
        fig.update(best_epoch=train_fig["best_epoch"], dev_f1=train_fig["dev"],
                   test_f1_at_train_max_len=train_fig["test"], train_seconds=round(train_fig["seconds"], 1),
                   trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
        del model
    # Python's figure from the saved folder, loaded as a user would.
    from transformers import AutoTokenizer
    test = read_conll(a.test)
    gold = [s[1] for s in test]
    model = load_peft(a.base, a.out)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(a.out, a.base))
    _, tags = ner_word_probs(model, tokenizer, [s[0] for s in test], a.max_len_eval)
    python_f1 = f1_score(gold, tags)
    fig.update(adapter=a.out, f1_python_seqeval=python_f1)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    out, err = run_ferrotune(a.ferrotune, ["eval", "--model", a.base, "--adapter", a.out, "--data", a.test,
                                           "--max-len", a.max_len_eval, "--threads", a.threads, "--json", report])
    ok = err is None
    if err:
        fig["ferrotune_eval_error"] = err
    else:
        ferrotune_f1 = json.load(open(report))["micro"]["f1"]
        fig.update(f1_ferrotune_eval=ferrotune_f1, difference=abs(ferrotune_f1 - python_f1))
        ok = abs(ferrotune_f1 - python_f1) <= a.f1_tolerance
    os.unlink(report)
    fig.update(ok=bool(ok), seconds=round(time.time() - t0, 1), peak_rss_mb=round(peak_rss_mb(), 1))
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ferrotune", default="target/release/ferrotune")
    common.add_argument("--base", required=True, help="the base model folder")
    common.add_argument("--max-len-eval", type=int, default=512, help="window at evaluation, both sides")
    tp = sub.add_parser("to-python", parents=[common], help="ferrotune adapter -> PEFT")
    tp.add_argument("--adapter", required=True, help="ferrotune's adapter folder (RUN/model)")
    tp.add_argument("--data", required=True, help="CoNLL file to tag")
    tp.add_argument("--merged", help="folder written by ferrotune merge")
    tp.add_argument("--threads", type=int, default=2)
    fp = sub.add_parser("from-python", parents=[common], help="PEFT adapter -> ferrotune eval")
    fp.add_argument("--data", required=True, help="training CoNLL file")
    fp.add_argument("--dev", required=True)
    fp.add_argument("--test", required=True)
    fp.add_argument("--out", required=True, help="where the PEFT adapter is written")
    fp.add_argument("--no-train", action="store_true", help="evaluate the adapter already in --out")
    fp.add_argument("--f1-tolerance", type=float, default=1e-4)
    add_train_args(fp, task=False)
    fp.set_defaults(epochs=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.command == "to-python":
        fig = to_python(a)
    else:
        fig = from_python(finish_args(a, "ner"))
    print(json.dumps(fig))
    sys.exit(0 if fig["ok"] else 1)


if __name__ == "__main__":
    main()
