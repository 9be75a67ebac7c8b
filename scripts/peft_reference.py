"""What Hugging Face PEFT (LoRA) saves for BERT heads, and a tiny PEFT fixture.

Layout mode (default): builds tiny random BertForTokenClassification and
BertForSequenceClassification models (hidden 16, 2 layers, 2 heads,
intermediate 32), wraps each with PEFT LoRA (r=4, alpha=8) for several
target/modules_to_save choices, trains a few steps on random data so lora_B is
non-zero, saves with save_pretrained and prints the adapter_config.json keys
that matter and every tensor name with its shape. It also checks that

  - merge_and_unload gives W + (alpha/r)·B·A for every adapted layer and the
    same outputs as the PeftModel;
  - an adapter_config.json with only the keys ferrotune writes, and tensors
    saved without safetensors metadata, load in PeftModel.from_pretrained and
    give the same outputs.

  python scripts/peft_reference.py                               # print
  python scripts/peft_reference.py --write docs/peft-layout.md   # regenerate the doc

Fixture mode: a complete tiny fixture for the Rust tests (under 200 KB):

  DIR/base/          BertForTokenClassification saved by transformers (3
                     generic labels LABEL_0..2), WordPiece tokenizer
                     (vocab.txt written here, tokenizer.json + tokenizer_config.json
                     by save_pretrained)
  DIR/adapter/       PEFT save_pretrained of a trained TOKEN_CLS adapter, labels
                     O, B-Disease, I-Disease, r=4, alpha=8, dropout 0.1, targets
                     query, value, attention.output.dense, modules_to_save
                     classifier; plus config.json (base config with id2label and
                     architectures) as ferrotune expects. No tokenizer files:
                     the tokenizer is the base's.
  DIR/sentences.txt  5 pre-tokenised sentences, words separated by spaces
  DIR/expected.json  per sentence: words, input_ids, word_ids, per-word
                     probabilities (softmax of the first sub-token's logits) and
                     argmax tags of PeftModel.from_pretrained(base, adapter),
                     tokenised with is_split_into_words=True

  Regenerate (from the repository root; the fixture records
  base_model_name_or_path as the path given, so keep this one):
  python scripts/peft_reference.py --fixture crates/ferrotune-cli/tests/fixtures/peft-tiny

Needs torch, transformers, peft, safetensors (scripts/requirements-reference.txt).
"""
import argparse
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft import __version__ as peft_version
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModelForTokenClassification, BertConfig, BertForSequenceClassification,
                          BertForTokenClassification, BertTokenizerFast)
from transformers import __version__ as transformers_version

from peft_train import peft_targets

TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=64)
ALL6 = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
# adapter_config.json keys ferrotune writes (the rest take LoraConfig's defaults when PEFT loads it)
FERROTUNE_KEYS = ["peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
                  "modules_to_save", "base_model_name_or_path", "fan_in_fan_out", "inference_mode",
                  "init_lora_weights"]
# keys that change what the adapter computes, shown with their values in the doc
MATTER = FERROTUNE_KEYS + ["use_rslora", "use_dora", "lora_bias", "layers_to_transform", "layers_pattern",
                           "rank_pattern", "alpha_pattern", "exclude_modules", "target_parameters",
                           "trainable_token_indices", "peft_version"]

CASES = [
    dict(name="TOKEN_CLS, targets query,value, modules_to_save [classifier]", head="token",
         task_type="TOKEN_CLS", targets=["query", "value"], modules_to_save=["classifier"]),
    dict(name="TOKEN_CLS, all six linear layers (list)", head="token",
         task_type="TOKEN_CLS", targets=ALL6, modules_to_save=["classifier"]),
    dict(name="SEQ_CLS, targets query,value, modules_to_save left to PEFT's default", head="seq",
         task_type="SEQ_CLS", targets=["query", "value"], modules_to_save=None),
    dict(name="SEQ_CLS, all six linear layers, modules_to_save [classifier, pooler]", head="seq",
         task_type="SEQ_CLS", targets=ALL6, modules_to_save=["classifier", "pooler"]),
    dict(name="TOKEN_CLS, list [query, value, output.dense]: the suffix also hits attention.output.dense",
         head="token", task_type="TOKEN_CLS", targets=["query", "value", "output.dense"],
         modules_to_save=["classifier"]),
    dict(name="TOKEN_CLS, FFN output.dense without attention.output.dense (regex from peft_train.peft_targets)",
         head="token", task_type="TOKEN_CLS", targets=peft_targets(["query", "value", "output.dense"]),
         modules_to_save=["classifier"]),
]


def tiny_model(head, vocab_size=100, num_labels=3, seed=0, **labels):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, num_labels=num_labels, **TINY, **labels)
    return (BertForTokenClassification if head == "token" else BertForSequenceClassification)(config)


def train_random(model, head, steps=5, vocab_size=100, num_labels=3, seed=0, lr=1e-2):
    """A few AdamW steps on random ids/labels: enough to make lora_B non-zero."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        ids = torch.randint(5, vocab_size, (4, 10), generator=g)
        y = torch.randint(0, num_labels, (4, 10) if head == "token" else (4,), generator=g)
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def describe(adapter_dir):
    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = []
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as f:
        metadata = f.metadata()
        for k in f.keys():
            t = f.get_tensor(k)
            tensors.append((k, list(t.shape), str(t.dtype).replace("torch.", ""), float(t.abs().max())))
    return {"files": sorted(p.name for p in adapter_dir.iterdir()), "config": config, "metadata": metadata,
            "tensors": tensors}


def adapted_modules(model):
    return sorted(n.removeprefix("base_model.model.") for n, m in model.named_modules() if hasattr(m, "lora_A")
                  and len(getattr(m, "lora_A", {})) > 0)


def check_merge(peft_model, ids):
    """merge_and_unload == W + (alpha/r)·B·A, and the same logits."""
    with torch.no_grad():
        before = peft_model(input_ids=ids).logits
        expected = {}
        for name, m in peft_model.named_modules():
            if hasattr(m, "lora_A") and "default" in m.lora_A:
                w = m.base_layer.weight + m.scaling["default"] * (m.lora_B["default"].weight @ m.lora_A["default"].weight)
                expected[name.removeprefix("base_model.model.") + ".weight"] = w.clone()
        merged = peft_model.merge_and_unload()
        state = merged.state_dict()
        weight_diff = max(float((state[k] - v).abs().max()) for k, v in expected.items())
        logit_diff = float((merged(input_ids=ids).logits - before).abs().max())
    return weight_diff, logit_diff, len(expected)


def check_minimal_load(case, adapter_dir, base_state, ids, reference_logits):
    """The ferrotune key set only, and tensors without metadata, still load in PEFT."""
    with tempfile.TemporaryDirectory() as tmp:
        config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
        minimal = {k: config[k] for k in FERROTUNE_KEYS}
        # as ferrotune writes it: the modules named, without PEFT's appended duplicates and "score"
        minimal["modules_to_save"] = [m for m in dict.fromkeys(config["modules_to_save"]) if m != "score"]
        (Path(tmp) / "adapter_config.json").write_text(json.dumps(minimal, indent=2))
        save_file(load_file(str(Path(adapter_dir) / "adapter_model.safetensors")),
                  str(Path(tmp) / "adapter_model.safetensors"))  # no {"format": "pt"} metadata
        base = tiny_model(case["head"])
        base.load_state_dict(base_state)
        model = PeftModel.from_pretrained(base, tmp).eval()
        with torch.no_grad():
            return float((model(input_ids=ids).logits - reference_logits).abs().max())


def layout():
    results = []
    ids = torch.randint(5, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    for i, case in enumerate(CASES):
        base = tiny_model(case["head"])
        base_state = {k: v.clone() for k, v in base.state_dict().items()}
        config = LoraConfig(task_type=case["task_type"], r=4, lora_alpha=8, lora_dropout=0.1,
                            target_modules=case["targets"],  # PEFT extends modules_to_save in place: copy
                            modules_to_save=list(case["modules_to_save"]) if case["modules_to_save"] else None)
        model = get_peft_model(base, config)
        train_random(model, case["head"], seed=i)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            d = describe(tmp)
            with torch.no_grad():
                logits = model(input_ids=ids).logits
            minimal_diff = check_minimal_load(case, tmp, base_state, ids, logits)
        d.update(case=case["name"], given_targets=case["targets"], given_modules_to_save=case["modules_to_save"],
                 adapted=adapted_modules(model), minimal_load_logit_diff=minimal_diff)
        d["merge_weight_diff"], d["merge_logit_diff"], d["merged_layers"] = check_merge(model, ids)
        results.append(d)
    return results


def shown(config):
    """The keys that matter; target_modules (saved from a Python set, in an order that varies between
    runs) sorted so that the doc is stable."""
    c = {k: config.get(k) for k in MATTER}
    if isinstance(c["target_modules"], list):
        c["target_modules"] = sorted(c["target_modules"])
    return c


def render(results):
    out = [f"# PEFT LoRA adapter layout (PEFT {peft_version}, transformers {transformers_version}, "
           f"torch {torch.__version__.split('+')[0]})", "",
           "Generated by `python scripts/peft_reference.py --write docs/peft-layout.md` from tiny random BERT "
           "models (hidden 16, 2 layers, 2 heads, intermediate 32, 3 labels), LoRA r=4, lora_alpha=8, "
           "lora_dropout 0.1, a few training steps so that lora_B is non-zero, then `save_pretrained`.", "",
           "## What `save_pretrained` writes", "",
           f"- files: {', '.join(f'`{f}`' for f in results[0]['files'])} (`README.md` is a model card; "
           "nothing else: no config.json, no tokenizer; ferrotune adds `config.json` with the labels and "
           "`architectures`, and the tokenizer files)",
           f"- safetensors metadata: `{json.dumps(results[0]['metadata'])}`; every tensor "
           f"{results[0]['tensors'][0][2]}",
           "- tensor names: the module path inside the transformers model prefixed with `base_model.model.`; "
           "in memory the names carry the adapter name (`lora_A.default.weight`, "
           "`classifier.modules_to_save.default.weight`), the file does not: `lora_A.weight`, "
           "`classifier.weight`",
           "- `lora_A.weight` is [r, in_features], `lora_B.weight` is [out_features, r]; no LoRA biases "
           "(`bias: none`, `lora_bias: false`)",
           "- forward: `y = x W^T + b + (lora_alpha / r) · dropout(x) A^T B^T` (scaling alpha/r = 2.0 here; "
           "`use_rslora: true` would make it alpha/sqrt(r), `use_dora: true` is another method: ferrotune "
           "should refuse both, and non-empty `rank_pattern`/`alpha_pattern`/`layers_to_transform`)",
           "- modules_to_save modules are saved whole, under their own path (`base_model.model.classifier.weight`, "
           "`base_model.model.bert.pooler.dense.weight`), with the trained values", "",
           "## Checks (each case below)", "",
           "- `merge_and_unload()` weight of every adapted layer equals `W + (alpha/r)·B·A` and gives the same "
           "logits as the PeftModel (max abs differences listed per case)",
           "- an `adapter_config.json` with only the keys ferrotune writes "
           f"({', '.join(f'`{k}`' for k in FERROTUNE_KEYS)}) and tensors saved without safetensors metadata load "
           "with `PeftModel.from_pretrained` and give the same logits", "",
           "## Pitfalls", "",
           "- **`target_modules` as a list matches suffixes**: a module is adapted when its name equals an entry "
           "or ends with `.` + entry (`peft.tuners.tuners_utils.check_target_module_exists`). So `output.dense` "
           "matches both the FFN output `bert.encoder.layer.N.output.dense` *and* "
           "`bert.encoder.layer.N.attention.output.dense`; `dense` alone would also hit `bert.pooler.dense`. "
           "To adapt the FFN output without the attention output, `target_modules` must be a string, which "
           "PEFT applies with `re.fullmatch` to the module name (case 5 shows the list's surprise, case 6 the regex).",
           "- **modules_to_save for SEQ_CLS/TOKEN_CLS**: PEFT always appends `classifier` and `score` "
           "(`PeftModelForSequenceClassification`/`...ForTokenClassification`), so the saved list is "
           "`[\"classifier\", \"score\"]` when none is given, and the given list plus those two otherwise "
           "(duplicates kept). `score` does not exist in BERT and is ignored. **The pooler is not trained "
           "or saved unless named** (`\"pooler\"`): a SEQ_CLS adapter saved with the default carries no pooler "
           "weights, so the base model's pooler is used as is. A module named in modules_to_save is never "
           "given LoRA matrices (`pooler` excludes `bert.pooler.dense` from the targets).",
           "- `target_modules` given as a list is saved from a Python set: its order varies between runs "
           "(shown sorted below). `modules_to_save` keeps PEFT's duplicates.",
           "- `inference_mode` is saved as `true` even while training; `base_model_name_or_path` is the "
           "string the base was loaded from (`null` for a model built in memory, as here).",
           "- the tiny fixture for the Rust tests, `crates/ferrotune-cli/tests/fixtures/peft-tiny/` (base "
           "folder, a PEFT-saved TOKEN_CLS adapter with config.json, sentences, expected word probabilities), "
           "is written by `python scripts/peft_reference.py --fixture crates/ferrotune-cli/tests/fixtures/peft-tiny`.",
           "- transformers 5 `BertTokenizer(Fast)` takes `vocab=` (a path or dict); a `vocab_file=` keyword "
           "is silently ignored and every word becomes [UNK].", ""]
    for i, d in enumerate(results, 1):
        c = d["config"]
        out += [f"## Case {i}: {d['case']}", "",
                f"Given: `target_modules={json.dumps(d['given_targets'])}`, "
                f"`modules_to_save={json.dumps(d['given_modules_to_save'])}`", "",
                "adapter_config.json (the keys that matter):", "", "```json",
                json.dumps(shown(c), indent=2), "```", "",
                "Other keys written, at their defaults: " + ", ".join(
                    f"`{k}`: `{json.dumps(c[k])}`" for k in sorted(c) if k not in MATTER), "",
                f"Adapted modules ({len(d['adapted'])}): " + ", ".join(f"`{m}`" for m in d["adapted"]), "",
                "adapter_model.safetensors:", "", "| tensor | shape |", "|---|---|"]
        out += [f"| `{n}` | {s} |" for n, s, _, _ in d["tensors"]]
        out += ["", f"Checks: merged weights vs W + (alpha/r)·B·A max abs diff {d['merge_weight_diff']:.1e} "
                    f"({d['merged_layers']} layers), merged logits vs PeftModel {d['merge_logit_diff']:.1e}, "
                    f"minimal config + metadata-free tensors vs PeftModel {d['minimal_load_logit_diff']:.1e}.",
                ""]
    return "\n".join(out)


# ---------------------------------------------------------------- fixture

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a of in with and was is were had has no two women men children patients carrier family history "
         "study risk gene mutation found showed treated evidence cases early onset severe type 1 . , ( ) - "
         "breast ovarian colon muscular cancer tumor dystrophy anemia leukemia diabetes syndrome deficiency "
         "disease huntington fragile x carriers years age").split()
PIECES = ["##s", "##tic", "##ous", "##ic", "##al"]
DISEASE_MOD = ["breast", "ovarian", "colon", "muscular", "severe", "fragile x", "huntington"]
DISEASE_HEAD = ["cancer", "tumor", "tumors", "dystrophy", "anemia", "leukemia", "diabetes", "syndrome",
                "deficiency", "disease"]
FILLER = ("the a of in with and was is were had has no two women men children patients carrier family history "
          "study risk gene mutation found showed treated evidence cases early onset type 1 . , ( ) - genetic "
          "carriers years age").split()
SENTENCES = [
    "Patients with breast cancer were treated .",
    "Two women had ovarian tumors and colon cancer .",
    "No evidence of muscular dystrophy was found in BRCA1 carriers .",
    "The genetic risk of diabetes is early .",
    "Children with severe anemia ( type 1 ) showed leukemia .",
]
LABELS = ["O", "B-Disease", "I-Disease"]


def synthetic_sentence(rng):
    words, tags = [], []
    for _ in range(rng.randint(4, 10)):
        if rng.random() < 0.25:
            phrase = ((rng.choice(DISEASE_MOD) + " ") if rng.random() < 0.6 else "") + rng.choice(DISEASE_HEAD)
            for k, w in enumerate(phrase.split()):
                words.append(w)
                tags.append("B-Disease" if k == 0 else "I-Disease")
        else:
            words.append(rng.choice(FILLER))
            tags.append("O")
    return words, tags


def fixture(out_dir, steps=600, seed=0, lr=1e-2, embed_scale=8.0):
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    base_dir, adapter_dir = out / "base", out / "adapter"
    base_dir.mkdir(parents=True)
    vocab = SPECIAL + WORDS + PIECES
    assert len(set(vocab)) == len(vocab)
    (base_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(base_dir)
    torch.manual_seed(seed)
    base = BertForTokenClassification(BertConfig(vocab_size=len(vocab), num_labels=3, **TINY))
    with torch.no_grad():  # words stand out from positions, so that a rank-4 adapter can learn something
        base.bert.embeddings.word_embeddings.weight.mul_(embed_scale)
    base.save_pretrained(base_dir)

    # Load as ferrotune's users would: the base folder with the labels in the config.
    config = AutoConfig.from_pretrained(base_dir, num_labels=3, id2label=dict(enumerate(LABELS)),
                                        label2id={l: i for i, l in enumerate(LABELS)})
    model = AutoModelForTokenClassification.from_pretrained(str(base_dir), config=config)
    lora = LoraConfig(task_type="TOKEN_CLS", r=4, lora_alpha=8, lora_dropout=0.1,
                      target_modules=["query", "value", "attention.output.dense"], modules_to_save=["classifier"])
    model = get_peft_model(model, lora)
    rng = random.Random(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    label2id = {l: i for i, l in enumerate(LABELS)}
    model.train()
    for step in range(steps):
        batch = [synthetic_sentence(rng) for _ in range(16)]
        enc = tokenizer([b[0] for b in batch], is_split_into_words=True, padding=True, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100)
        for r, (_, tags) in enumerate(batch):
            prev = None
            for pos, w in enumerate(enc.word_ids(r)):
                if w is not None and w != prev:
                    labels[r, pos] = label2id[tags[w]]
                prev = w
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    print(json.dumps({"fixture_training_loss": round(loss.item(), 4), "steps": steps}))
    model.eval()
    model.save_pretrained(adapter_dir)
    # PEFT saves target_modules from a set (order varies per process); sort it, in PEFT's own
    # format (indent 2, sorted keys), so that regenerating gives the same bytes.
    path = adapter_dir / "adapter_config.json"
    saved = json.loads(path.read_text())
    saved["target_modules"] = sorted(saved["target_modules"])
    path.write_text(json.dumps(saved, indent=2, sort_keys=True))
    cfg = model.get_base_model().config
    cfg.architectures = ["BertForTokenClassification"]
    cfg.save_pretrained(adapter_dir)

    # Expected outputs from a fresh load, the documented Python path.
    config = AutoConfig.from_pretrained(adapter_dir)
    reloaded = AutoModelForTokenClassification.from_pretrained(str(base_dir), config=config)
    reloaded = PeftModel.from_pretrained(reloaded, str(adapter_dir)).eval()
    words = [s.split() for s in SENTENCES]
    enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(reloaded(**enc).logits, -1)
        same = float((torch.softmax(model(**enc).logits, -1) - probs).abs().max())
    assert same < 1e-6, same
    sentences = []
    for r, ws in enumerate(words):
        word_ids = enc.word_ids(r)
        n = int(enc["attention_mask"][r].sum())
        first = [word_ids.index(w) for w in range(len(ws))]
        p = [[round(float(x), 7) for x in probs[r, pos]] for pos in first]
        sentences.append({"words": ws, "input_ids": enc["input_ids"][r, :n].tolist(), "word_ids": word_ids[:n],
                          "first_subtoken": first, "probs": p,
                          "tags": [LABELS[int(probs[r, pos].argmax())] for pos in first]})
    (out / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    expected = {
        "about": "PeftModel.from_pretrained(AutoModelForTokenClassification.from_pretrained(base, "
                 "config=AutoConfig.from_pretrained(adapter)), adapter); per word: softmax of its first "
                 "sub-token's logits; written by scripts/peft_reference.py --fixture",
        "peft_version": peft_version, "transformers_version": transformers_version,
        "labels": LABELS, "r": 4, "lora_alpha": 8, "scaling": 2.0,
        "sentences": sentences,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    total = sum(files.values())
    print(json.dumps({"fixture": str(out), "files": files, "total_bytes": total,
                      "tags": [s["tags"] for s in sentences]}, indent=1))
    assert total < 200_000, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", help="write the layout as Markdown to this file (docs/peft-layout.md)")
    ap.add_argument("--fixture", help="write the tiny Rust-test fixture to this folder (replaced)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.fixture:
        fixture(args.fixture)
        if not args.write:
            return
    results = layout()
    for d in results:
        print(f"== {d['case']}")
        print(json.dumps(shown(d["config"])))
        print(f"  adapted modules ({len(d['adapted'])}): {', '.join(d['adapted'])}")
        for n, s, dt, mx in d["tensors"]:
            print(f"  {n} {s} {dt} max|x|={mx:.3g}")
        print(f"  checks: merge weights {d['merge_weight_diff']:.1e}, merge logits {d['merge_logit_diff']:.1e}, "
              f"minimal-config load {d['minimal_load_logit_diff']:.1e}")
        assert d["merge_weight_diff"] < 1e-5 and d["merge_logit_diff"] < 1e-4 and d["minimal_load_logit_diff"] < 1e-6
        assert all(mx > 0 for n, _, _, mx in d["tensors"]), "a zero tensor: lora_B not trained?"
    if args.write:
        Path(args.write).write_text(render(results))
        print("wrote", args.write)


if __name__ == "__main__":
    main()
