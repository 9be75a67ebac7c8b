"""Interoperability with Python transformers, both ways.

1. A model saved by `ferrotune train` loads in
   AutoModelForTokenClassification.from_pretrained and gives the same tags
   as `ferrotune predict` on every sentence of a CoNLL file.
2. A model fine-tuned by transformers loads in `ferrotune eval` and scores
   the same seqeval F1 as Python does on the same file.

Both sides use windows of 512 tokens so that no sentence is cut.

  python scripts/hf_roundtrip.py --ferrotune-model runs/ft-default/model \
      --python-model runs/torch-tuned --data data/ncbi-disease/test.tsv
"""
import argparse
import json
import subprocess
import tempfile

import torch
from conll import read_conll
from seqeval.metrics import f1_score
from transformers import AutoModelForTokenClassification, AutoTokenizer


def python_tags(model_dir, sentences, batch=32):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    out = []
    with torch.no_grad():
        for i in range(0, len(sentences), batch):
            words = [s[0] for s in sentences[i:i + batch]]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=512,
                            padding=True, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1)
            for r in range(len(words)):
                tags, prev = ["O"] * len(words[r]), None
                for pos, w in enumerate(enc.word_ids(r)):
                    if w is not None and w != prev:
                        tags[w] = id2label[int(pred[r, pos])]
                    prev = w
                out.append(tags)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrotune", default="target/release/ferrotune")
    ap.add_argument("--ferrotune-model", required=True)
    ap.add_argument("--python-model", required=True)
    ap.add_argument("--data", default="data/ncbi-disease/test.tsv")
    args = ap.parse_args()
    sentences = read_conll(args.data)
    gold = [s[1] for s in sentences]

    # 1. ferrotune -> transformers
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for tokens, _ in sentences:
            f.write(json.dumps({"tokens": tokens}) + "\n")
        inputs = f.name
    out = subprocess.run([args.ferrotune, "predict", "--model", args.ferrotune_model, "--input", inputs,
                          "--max-len", "512"], check=True, capture_output=True, text=True).stdout
    ours = [json.loads(line)["tags"] for line in out.splitlines()]
    theirs = python_tags(args.ferrotune_model, sentences)
    same = sum(a == b for a, b in zip(ours, theirs))
    print(json.dumps({"check": "ferrotune model in transformers", "sentences": len(sentences),
                      "identical_tag_sequences": same,
                      "f1_ferrotune_predict": f1_score(gold, ours), "f1_transformers": f1_score(gold, theirs)}))

    # 2. transformers -> ferrotune
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    subprocess.run([args.ferrotune, "eval", "--model", args.python_model, "--data", args.data,
                    "--max-len", "512", "--json", report], check=True, capture_output=True)
    ferrotune_f1 = json.load(open(report))["micro"]["f1"]
    python_f1 = f1_score(gold, python_tags(args.python_model, sentences))
    print(json.dumps({"check": "transformers model in ferrotune eval", "f1_ferrotune_eval": ferrotune_f1,
                      "f1_python_seqeval": python_f1, "difference": abs(ferrotune_f1 - python_f1)}))


if __name__ == "__main__":
    main()
