"""PyTorch + transformers reference for sequence classification on a
TSV with a header (text,label or text_a,text_b,label): the same workflow as
`ferrotune train --task classify` / `ferrotune eval`. Batches padded to the
longest, AdamW (weight decay 0.01, none on biases and LayerNorm), linear
decay after 10% warmup, clipping 1.0, the best epoch on the dev set by macro
F1, then the test report (scikit-learn). Prints one JSON line at the end.

  python scripts/reference_classify.py --data data/financial-phrasebank --lr 5e-5 --batch-size 32 --epochs 4
"""
import argparse
import csv
import json
import os
import random
import time

import torch
from sklearn.metrics import accuracy_score, classification_report, f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup


def read_tsv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [((r.get("text") or r["text_a"]), r.get("text_b"), r["label"]) for r in rows]


def encode(tokenizer, rows, label2id, max_len):
    items = []
    for a, b, label in rows:
        enc = tokenizer(a, b, truncation=True, max_length=max_len)
        items.append((enc["input_ids"], enc["token_type_ids"], label2id[label]))
    return items


def batches(items, size, pad_id, shuffle, rng):
    order = list(range(len(items)))
    if shuffle:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        chunk = [items[i] for i in order[start:start + size]]
        length = max(len(c[0]) for c in chunk)
        ids = torch.full((len(chunk), length), pad_id)
        types = torch.zeros((len(chunk), length), dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for r, (i, t, _) in enumerate(chunk):
            ids[r, :len(i)] = torch.tensor(i)
            types[r, :len(t)] = torch.tensor(t)
            mask[r, :len(i)] = 1
        yield ids, types, mask, torch.tensor([c[2] for c in chunk])


def predict(model, items, pad_id):
    model.eval()
    out = []
    with torch.no_grad():
        for ids, types, mask, _ in batches(items, 64, pad_id, False, None):
            out += model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits.argmax(-1).tolist()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--data", required=True, help="folder with train.tsv, devel.tsv, test.tsv")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train, dev, test = (read_tsv(os.path.join(args.data, f)) for f in ("train.tsv", "devel.tsv", "test.tsv"))
    labels = sorted({r[2] for r in train})
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    tr, dv, ts = (encode(tokenizer, d, label2id, args.max_len) for d in (train, dev, test))
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr)
    steps = args.epochs * ((len(tr) + args.batch_size - 1) // args.batch_size)
    sched = get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    best = (-1.0, 0, None)
    train_time = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        for ids, types, mask, y in batches(tr, args.batch_size, tokenizer.pad_token_id, True, rng):
            loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        train_time += time.time() - t0
        gold = [i[2] for i in dv]
        f1 = f1_score(gold, predict(model, dv, tokenizer.pad_token_id), average="macro")
        print(json.dumps({"epoch": epoch, "dev_macro_f1": f1, "epoch_s": time.time() - t0}), flush=True)
        if f1 > best[0]:
            best = (f1, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    gold = [i[2] for i in ts]
    pred = predict(model, ts, tokenizer.pad_token_id)
    print(classification_report(gold, pred, target_names=labels, digits=4))
    print(json.dumps({
        "data": args.data, "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
        "best_epoch": best[1], "dev_macro_f1": best[0],
        "test_accuracy": accuracy_score(gold, pred), "test_macro_f1": f1_score(gold, pred, average="macro"),
        "test_weighted_f1": f1_score(gold, pred, average="weighted"),
        "train_texts_per_s": len(tr) * args.epochs / train_time,
    }))


if __name__ == "__main__":
    main()
