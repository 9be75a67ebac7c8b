"""A sequence model saved by `ferrotune train --task classify` loads in
AutoModelForSequenceClassification.from_pretrained and gives the same
labels (and probabilities, within float tolerance) as `ferrotune predict`
on every text of a TSV file.

  python scripts/hf_roundtrip_classify.py --model runs/fpb-ft-default \
      --data data/financial-phrasebank/test.tsv
"""
import argparse
import csv
import json
import subprocess
import tempfile

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ferrotune", default="target/release/ferrotune")
    ap.add_argument("--max-len", type=int, default=128)
    args = ap.parse_args()
    with open(args.data, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    pairs = "text_a" in rows[0]
    texts = [(r["text_a"], r["text_b"]) if pairs else (r["text"], None) for r in rows]

    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
        subprocess.run([args.ferrotune, "predict", "--model", args.model, "--input", args.data,
                        "--output", out.name, "--max-len", str(args.max_len)], check=True)
        ours = [json.loads(line) for line in out]

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    id2label = model.config.id2label
    theirs, probs = [], []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            chunk = texts[i:i + 32]
            a = [t[0] for t in chunk]
            b = [t[1] for t in chunk] if pairs else None
            enc = tokenizer(a, b, truncation=True, max_length=args.max_len, padding=True, return_tensors="pt")
            p = model(**enc).logits.softmax(-1)
            theirs += [id2label[int(k)] for k in p.argmax(-1)]
            probs += p.tolist()
    same = sum(o["label"] == t for o, t in zip(ours, theirs))
    diff = max(abs(o["scores"][id2label[k]] - row[k]) for o, row in zip(ours, probs) for k in range(len(row)))
    print(json.dumps({"texts": len(texts), "same_label": same, "max_prob_diff": diff}))


if __name__ == "__main__":
    main()
