"""PyTorch + transformers side of scripts/bench.sh: the same workloads as
`ferrotune bench` and `ferrotune predict`, printing the same JSON fields.

  python scripts/bench_torch.py forward --batch 32 --len 64 --threads 2
  python scripts/bench_torch.py train-step --batch 16 --len 48 --threads 2
  python scripts/bench_torch.py predict --model DIR --input test.txt --output out.jsonl --threads 2
  python scripts/bench_torch.py make-model --output DIR

fp32, eager mode (what a user of the design document's PyTorch code runs).
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def setup(args):
    t0 = time.perf_counter()
    model = AutoModelForTokenClassification.from_pretrained(args.model, num_labels=3)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (args.batch, args.len), generator=g)
    mask = torch.ones_like(ids)
    return model, ids, mask, load_s


def forward(args):
    model, ids, mask, load_s = setup(args)
    model.eval()
    times = []
    with torch.inference_mode():
        for run in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask).logits.numpy()
            if run >= args.warmup:
                times.append(time.perf_counter() - t0)
    return {"workload": "forward", "batch": args.batch, "len": args.len, "load_s": load_s, "times_s": times}


def train_step(args):
    model, ids, mask, load_s = setup(args)
    model.train()
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
    ], lr=1e-5)
    labels = (torch.arange(args.batch * args.len) % 3).reshape(args.batch, args.len)
    times, fwd, bwd, optim = [], [], [], []
    for run in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        if run >= args.warmup:
            times.append(t3 - t0)
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            optim.append(t3 - t2)
    return {"workload": "train-step", "batch": args.batch, "len": args.len, "load_s": load_s, "times_s": times,
            "phases_s": {"forward": fwd, "backward": bwd, "optimizer": optim}}


def predict(args):
    """Whitespace words per line, first sub-token's tag per word, batches of
    `--batch-size` texts padded to the longest (as `ferrotune predict`)."""
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForTokenClassification.from_pretrained(args.model)
    model.eval()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(args.input) as f:
        texts = [line.rstrip("\n") for line in f]
    id2label = model.config.id2label
    with open(args.output, "w") as out, torch.inference_mode():
        for start in range(0, len(texts), args.batch_size):
            words = [t.split() for t in texts[start:start + args.batch_size]]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.max_len,
                            padding=True, return_tensors="pt")
            tags = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
            for row, ws in enumerate(words):
                labels, prev = ["O"] * len(ws), None
                for pos, w in enumerate(enc.word_ids(row)):
                    if w is not None and w != prev:
                        labels[w] = id2label[int(tags[row, pos])]
                    prev = w
                out.write(json.dumps({"tokens": ws, "tags": labels}) + "\n")
    return {"workload": "predict", "texts": len(texts), "load_s": load_s, "predict_s": time.perf_counter() - t0}


def make_model(args):
    """A BertForTokenClassification folder (3 tags, seeded random head) that
    both sides load for the predict workload."""
    labels = ["O", "B-Disease", "I-Disease"]
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=3, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(args.output)
    AutoTokenizer.from_pretrained(args.model).save_pretrained(args.output)
    return {"workload": "make-model", "output": args.output}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["forward", "train-step", "predict", "make-model"])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--len", type=int)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    record = {"forward": forward, "train-step": train_step, "predict": predict, "make-model": make_model}[args.workload](args)
    record["threads"] = torch.get_num_threads()
    record["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
