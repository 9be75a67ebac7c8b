"""PyTorch + transformers reference for NER fine-tuning on a CoNLL corpus.

The same workflow as `ferrotune train` / `ferrotune eval`: first sub-token of
each word carries its label, batches padded to the longest, AdamW, the best
epoch on the dev set by seqeval entity F1 (default mode), then the test
report. Prints one JSON line with the figures and can save the best model.

  python scripts/reference_ner.py --recipe tuned  [--threads 2] [--save DIR]
  python scripts/reference_ner.py --recipe design
  python scripts/reference_ner.py --epochs 1 --no-test --bf16   (bf16 autocast)
  python scripts/reference_ner.py --eval-model DIR --data data/ncbi-disease/test.tsv

Recipes:
  design: AdamW lr 2e-5 (weight decay 0.01 on all parameters, torch's
          default), batch 16, max-len 128, 5 epochs, constant learning rate,
          no clipping.
  tuned:  lr 5e-5, linear decay after 10% warmup, weight decay 0.01 (none on
          biases and LayerNorm), clipping 1.0, batch 16, max-len 128, 4 epochs.
"""
import argparse
import json
import random
import time

import torch
from conll import read_conll
from seqeval.metrics import classification_report, f1_score
from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

RECIPES = {
    "design": dict(lr=2e-5, epochs=5, warmup=0.0, schedule="constant", wd=0.01, wd_all=True, clip=0.0),
    "tuned": dict(lr=5e-5, epochs=4, warmup=0.1, schedule="linear", wd=0.01, wd_all=False, clip=1.0),
}


def encode(tokenizer, sentences, label2id, max_len):
    enc = tokenizer([s[0] for s in sentences], is_split_into_words=True, truncation=True, max_length=max_len)
    items = []
    for i, (_, tags) in enumerate(sentences):
        word_ids = enc.word_ids(i)
        labels, prev = [], None
        for w in word_ids:
            labels.append(-100 if w is None or w == prev else label2id[tags[w]])
            prev = w
        items.append((enc["input_ids"][i], labels, word_ids))
    return items


def label_maps(train):
    """The BIO labels of the entity types in `train` ("O" first), by id and by name."""
    types = sorted({t[2:] for s in train for t in s[1] if t != "O"})
    labels = ["O"] + sorted([f"B-{t}" for t in types] + [f"I-{t}" for t in types])
    return labels, {l: i for i, l in enumerate(labels)}, dict(enumerate(labels))


def batches(items, size, pad_id, shuffle, rng):
    order = list(range(len(items)))
    if shuffle:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        chunk = [items[i] for i in order[start:start + size]]
        length = max(len(c[0]) for c in chunk)
        ids = torch.full((len(chunk), length), pad_id)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        labels = torch.full((len(chunk), length), -100)
        for r, (i, l, _) in enumerate(chunk):
            ids[r, :len(i)] = torch.tensor(i)
            mask[r, :len(i)] = 1
            labels[r, :len(l)] = torch.tensor(l)
        yield ids, mask, labels, [order[start + k] for k in range(len(chunk))]


def predict(model, items, sentences, id2label, pad_id, batch_size=32, bf16=False):
    model.eval()
    preds = [None] * len(items)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for ids, mask, _, idx in batches(items, batch_size, pad_id, False, None):
            logits = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            for r, k in enumerate(idx):
                words = ["O"] * len(sentences[k][0])  # words cut by truncation stay O
                prev = None
                for pos, w in enumerate(items[k][2]):
                    if w is not None and w != prev:
                        words[w] = id2label[int(logits[r, pos])]
                    prev = w
                preds[k] = words
    return preds


def add_data_args(ap):
    """--model and the NCBI-disease --train, --dev and --test files."""
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--train", default="data/ncbi-disease/train.tsv")
    ap.add_argument("--dev", default="data/ncbi-disease/devel.tsv")
    ap.add_argument("--test", default="data/ncbi-disease/test.tsv")


def main():
    ap = argparse.ArgumentParser()
    add_data_args(ap)
    ap.add_argument("--recipe", choices=RECIPES, default="tuned")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save")
    ap.add_argument("--eval-model", help="only evaluate this fine-tuned model folder on --data")
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs")
    ap.add_argument("--no-test", action="store_true", help="stop after training (for timing)")
    ap.add_argument("--bf16", action="store_true",
                    help="mixed precision: torch.autocast(cpu, bfloat16) around forward and loss")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    if args.eval_model:
        tokenizer = AutoTokenizer.from_pretrained(args.eval_model)
        model = AutoModelForTokenClassification.from_pretrained(args.eval_model)
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        label2id = {v: k for k, v in id2label.items()}
        data = read_conll(args.data)
        items = encode(tokenizer, data, label2id, args.max_len)
        preds = predict(model, items, data, id2label, tokenizer.pad_token_id)
        gold = [s[1] for s in data]
        print(classification_report(gold, preds, digits=4))
        print(json.dumps({"f1": f1_score(gold, preds)}))
        return

    r = dict(RECIPES[args.recipe])
    if args.epochs:
        r["epochs"] = args.epochs
    train, dev, test = read_conll(args.train), read_conll(args.dev), read_conll(args.test)
    labels, label2id, id2label = label_maps(train)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=id2label, label2id=label2id)
    tr, dv, ts = (encode(tokenizer, d, label2id, args.max_len) for d in (train, dev, test))
    if r["wd_all"]:
        groups = [{"params": list(model.parameters()), "weight_decay": r["wd"]}]
    else:
        no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
        groups = [
            {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": r["wd"]},
            {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
        ]
    opt = torch.optim.AdamW(groups, lr=r["lr"])
    steps = r["epochs"] * ((len(tr) + args.batch_size - 1) // args.batch_size)
    sched = (get_linear_schedule_with_warmup(opt, int(r["warmup"] * steps), steps)
             if r["schedule"] == "linear" else None)
    best = (-1.0, 0, None)
    train_time = 0.0
    for epoch in range(1, r["epochs"] + 1):
        model.train()
        t0 = time.time()
        for ids, mask, lab, _ in batches(tr, args.batch_size, tokenizer.pad_token_id, True, rng):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
            loss.backward()
            if r["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), r["clip"])
            opt.step()
            if sched:
                sched.step()
            opt.zero_grad()
        train_time += time.time() - t0
        f1 = f1_score([s[1] for s in dev], predict(model, dv, dev, id2label, tokenizer.pad_token_id, bf16=args.bf16))
        print(json.dumps({"epoch": epoch, "dev_f1": f1, "epoch_s": time.time() - t0}), flush=True)
        if f1 > best[0]:
            best = (f1, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    if args.no_test:
        print(json.dumps({"train_sentences_per_s": len(tr) * r["epochs"] / train_time}))
        return
    model.load_state_dict(best[2])
    t0 = time.time()
    preds = predict(model, ts, test, id2label, tokenizer.pad_token_id)
    predict_s = time.time() - t0
    gold = [s[1] for s in test]
    print(classification_report(gold, preds, digits=4))
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)
    print(json.dumps({
        "recipe": args.recipe, "best_epoch": best[1], "dev_f1": best[0],
        "test_f1": f1_score(gold, preds), "test_f1_strict": f1_score(gold, preds, mode="strict", scheme=__import__("seqeval.scheme", fromlist=["IOB2"]).IOB2),
        "train_sentences_per_s": len(tr) * r["epochs"] / train_time,
        "predict_sentences_per_s": len(ts) / predict_s,
    }))


if __name__ == "__main__":
    main()
