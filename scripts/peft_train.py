"""Python PEFT side of the LoRA side-by-side: fine-tune a LoRA adapter with
Hugging Face PEFT on the same data and recipe as `ferrotune train --peft lora`.

fp32 throughout. Only the LoRA matrices and the `--modules-to-save` modules
(default: the classifier; for `classify` also the pooler, as
BertForSequenceClassification feeds it) are trained. AdamW, weight decay 0.01
(none on biases and LayerNorm), linear decay after 10% warmup, clipping 1.0
(reference_ner.py's tuned recipe with a LoRA learning rate), the best epoch on
the dev set, then the test figure:

  ner:      seqeval entity F1 (default mode), CoNLL files
  classify: accuracy, TSV/CSV with a header text,label (or text_a,text_b,label);
            the epoch is picked by dev macro F1 as ferrotune does

Prints one JSON line {dev, test, seconds, trainable_params, peak_rss_mb, ...};
`seconds` is the wall time of the training epochs including the dev passes.

  python scripts/peft_train.py --task ner --model models/all-MiniLM-L6-v2 \\
      --train data/ncbi-disease/train.tsv --dev data/ncbi-disease/devel.tsv \\
      --test data/ncbi-disease/test.tsv --r 8 --alpha 16 --dropout 0.1 \\
      --targets query,value --lr 1e-3 --epochs 4 [--save DIR]
  python scripts/peft_train.py --task classify --model models/all-MiniLM-L6-v2 \\
      --train data/financial-phrasebank/train.tsv --dev .../devel.tsv --test .../test.tsv

`--targets` are ferrotune's names (query, key, value, attention.output.dense,
intermediate.dense, output.dense); `peft_targets` turns them into PEFT's
target_modules the way ferrotune writes them: a list of suffixes, or a regex
when the FFN "output.dense" is wanted without "attention.output.dense" (PEFT
matches list entries as suffixes, so "output.dense" would hit both).

`--save DIR` writes a PEFT adapter folder as ferrotune expects one:
adapter_config.json + adapter_model.safetensors (save_pretrained), config.json
(base config with the labels and `architectures`) and the tokenizer files.
The helpers here are imported by peft_interop.py and peft_reference.py.
"""
import argparse
import csv
import json
import random
import re
import resource
import time

import torch

# The six linear layers of a BERT layer, ferrotune's name -> full path under encoder.layer.N
LAYER_PATHS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention.output.dense": "attention.output.dense",
    "intermediate.dense": "intermediate.dense",
    "output.dense": "output.dense",  # the FFN output; as a PEFT suffix it also matches attention.output.dense
}


def peft_targets(names):
    """ferrotune's target names -> PEFT target_modules (a list, or a regex string).

    A list entry matches a module whose name ends with ".entry", so "output.dense"
    alone would also adapt attention.output.dense. When the FFN output is wanted
    without the attention output, a regex (PEFT: re.fullmatch on the module name,
    e.g. "bert.encoder.layer.0.output.dense") names each layer exactly.
    """
    names = [n.strip() for n in names if n.strip()]
    for n in names:
        if n not in LAYER_PATHS:
            raise SystemExit(f"unknown target {n!r}; expected some of {', '.join(LAYER_PATHS)}")
    if "output.dense" in names and "attention.output.dense" not in names:
        alts = "|".join(re.escape(LAYER_PATHS[n]) for n in names)
        return rf".*\.layer\.\d+\.(?:{alts})"
    return names


def lora_config(task_type, r, alpha, dropout, targets, modules_to_save):
    from peft import LoraConfig
    return LoraConfig(task_type=task_type, r=r, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=peft_targets(targets) if isinstance(targets, (list, tuple)) else targets,
                      modules_to_save=list(modules_to_save), bias="none")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def trainable_state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore_state(model, state):
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v)


def optimizer_and_schedule(model, lr, steps, warmup=0.1, wd=0.01):
    from transformers import get_linear_schedule_with_warmup
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": wd},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=lr)
    return opt, get_linear_schedule_with_warmup(opt, int(warmup * steps), steps)


def ner_labels(train):
    types = sorted({t[2:] for s in train for t in s[1] if t != "O"})
    return ["O"] + sorted([f"B-{t}" for t in types] + [f"I-{t}" for t in types])


def ner_word_probs(model, tokenizer, sentences, max_len=512, batch=32):
    """Per sentence: the softmax of each word's first sub-token logits (list of
    lists) and the argmax tags (id2label of the model's config). Words cut by
    truncation get None / "O"."""
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    probs_out, tags_out = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(sentences), batch):
            words = [list(s) for s in sentences[i:i + batch]]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_len,
                            padding=True, return_tensors="pt")
            probs = torch.softmax(model(**enc).logits.float(), -1)
            for r in range(len(words)):
                p, tags, prev = [None] * len(words[r]), ["O"] * len(words[r]), None
                for pos, w in enumerate(enc.word_ids(r)):
                    if w is not None and w != prev:
                        p[w] = probs[r, pos].tolist()
                        tags[w] = id2label[int(probs[r, pos].argmax())]
                    prev = w
                probs_out.append(p)
                tags_out.append(tags)
    return probs_out, tags_out


def read_texts(path):
    """TSV (tab, no quoting) or CSV with a header text,label or text_a,text_b,label."""
    if path.endswith(".tsv"):
        from reference_classify import read_tsv
        return read_tsv(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [((r.get("text") or r["text_a"]), r.get("text_b"), r["label"]) for r in rows]


def save_adapter(model, tokenizer, out, architecture):
    """PEFT save_pretrained + config.json with the labels + the tokenizer files."""
    model.save_pretrained(out)
    config = model.get_base_model().config
    config.architectures = [architecture]
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def train_ner(a, log=print):
    """Returns (peft model, tokenizer, figures). `a` has the CLI's fields."""
    from conll import read_conll
    from peft import get_peft_model
    from reference_ner import batches, encode, predict
    from seqeval.metrics import f1_score
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    rng = random.Random(a.seed)
    torch.manual_seed(a.seed)
    train, dev, test = read_conll(a.train), read_conll(a.dev), read_conll(a.test)
    labels = ner_labels(train)
    label2id = {l: i for i, l in enumerate(labels)}
    id2label = dict(enumerate(labels))
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    base = AutoModelForTokenClassification.from_pretrained(
        a.model, num_labels=len(labels), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)
    model = get_peft_model(base, lora_config("TOKEN_CLS", a.r, a.alpha, a.dropout, a.targets, a.modules_to_save))
    tr, dv, ts = (encode(tokenizer, d, label2id, a.max_len) for d in (train, dev, test))
    steps = a.epochs * ((len(tr) + a.batch - 1) // a.batch)
    opt, sched = optimizer_and_schedule(model, a.lr, steps)
    best, t0 = (-1.0, 0, None), time.time()
    for epoch in range(1, a.epochs + 1):
        model.train()
        te = time.time()
        for ids, mask, lab, _ in batches(tr, a.batch, tokenizer.pad_token_id, True, rng):
            loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        f1 = f1_score([s[1] for s in dev], predict(model, dv, dev, id2label, tokenizer.pad_token_id))
        log(json.dumps({"epoch": epoch, "dev_f1": f1, "epoch_s": time.time() - te}))
        if f1 > best[0]:
            best = (f1, epoch, trainable_state(model))
    seconds = time.time() - t0
    restore_state(model, best[2])
    test_f1 = f1_score([s[1] for s in test], predict(model, ts, test, id2label, tokenizer.pad_token_id))
    return model, tokenizer, {"task": "ner", "metric": "seqeval entity F1", "best_epoch": best[1],
                              "dev": best[0], "test": test_f1, "seconds": seconds}


def train_classify(a, log=print):
    from peft import get_peft_model
    from reference_classify import batches, encode, predict
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    rng = random.Random(a.seed)
    torch.manual_seed(a.seed)
    train, dev, test = read_texts(a.train), read_texts(a.dev), read_texts(a.test)
    labels = sorted({r[2] for r in train})
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    base = AutoModelForSequenceClassification.from_pretrained(
        a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        ignore_mismatched_sizes=True)  # a base that already has a head of another size
    model = get_peft_model(base, lora_config("SEQ_CLS", a.r, a.alpha, a.dropout, a.targets, a.modules_to_save))
    tr, dv, ts = (encode(tokenizer, d, label2id, a.max_len) for d in (train, dev, test))
    steps = a.epochs * ((len(tr) + a.batch - 1) // a.batch)
    opt, sched = optimizer_and_schedule(model, a.lr, steps)
    best, t0 = (-1.0, 0, None, 0.0), time.time()
    for epoch in range(1, a.epochs + 1):
        model.train()
        te = time.time()
        for ids, types, mask, y in batches(tr, a.batch, tokenizer.pad_token_id, True, rng):
            loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        gold, pred = [i[2] for i in dv], predict(model, dv, tokenizer.pad_token_id)
        f1, acc = f1_score(gold, pred, average="macro"), accuracy_score(gold, pred)
        log(json.dumps({"epoch": epoch, "dev_macro_f1": f1, "dev_accuracy": acc, "epoch_s": time.time() - te}))
        if f1 > best[0]:
            best = (f1, epoch, trainable_state(model), acc)
    seconds = time.time() - t0
    restore_state(model, best[2])
    gold, pred = [i[2] for i in ts], predict(model, ts, tokenizer.pad_token_id)
    return model, tokenizer, {"task": "classify", "metric": "dev macro F1 / test accuracy", "best_epoch": best[1],
                              "dev": best[0], "dev_accuracy": best[3], "test": accuracy_score(gold, pred),
                              "test_macro_f1": f1_score(gold, pred, average="macro"), "seconds": seconds}


def add_train_args(ap, task=True):
    if task:
        ap.add_argument("--task", choices=["ner", "classify"], default="ner")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--targets", default="query,value", help="comma-separated: " + ",".join(LAYER_PATHS))
    ap.add_argument("--modules-to-save", help="default: classifier (ner), classifier,pooler (classify)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)


def finish_args(a, task):
    a.targets = a.targets.split(",")
    a.modules_to_save = (a.modules_to_save.split(",") if a.modules_to_save
                         else ["classifier"] if task == "ner" else ["classifier", "pooler"])
    if float(a.alpha).is_integer():
        a.alpha = int(a.alpha)  # PEFT writes lora_alpha as given; keep 16, not 16.0
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--save", help="write the best adapter (PEFT layout + config.json + tokenizer) here")
    add_train_args(ap)
    a = ap.parse_args()
    a = finish_args(a, a.task)
    torch.set_num_threads(a.threads)
    train = train_ner if a.task == "ner" else train_classify
    model, tokenizer, figures = train(a, log=lambda line: print(line, flush=True))
    if a.save:
        save_adapter(model, tokenizer, a.save,
                     "BertForTokenClassification" if a.task == "ner" else "BertForSequenceClassification")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({**figures, "trainable_params": trainable, "peak_rss_mb": round(peak_rss_mb(), 1),
                      "r": a.r, "alpha": a.alpha, "dropout": a.dropout, "targets": a.targets,
                      "modules_to_save": a.modules_to_save, "lr": a.lr, "epochs": a.epochs,
                      "batch": a.batch, "max_len": a.max_len, "threads": a.threads, "seed": a.seed}))


if __name__ == "__main__":
    main()
