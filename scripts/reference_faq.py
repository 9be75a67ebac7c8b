"""The FAQ assistant's figures computed with sentence-transformers and
scikit-learn, to set beside `ferrotune faq eval` (scripts/faq_figures.sh):
the same FAQ and question files, the same rules (an entry scores the cosine
similarity of its question; the answer is the best entry; it is right when it
is the expected entry or has the expected answer; the threshold is the lowest
dev score at which answered dev questions are at least --target-precision
right), printed as JSON lines.

  .venv/bin/python scripts/reference_faq.py MODEL FAQ DEV TEST [--target-precision 0.9]
"""
import argparse
import csv
import json

import numpy as np
from sentence_transformers import SentenceTransformer
from sklearn.metrics import roc_auc_score


def table(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def questions(path):
    rows = [r for r in table(path) if r.get("similar", "1") != "0"]
    return [(r["query"], r.get("faq_id") or None, r.get("answer") or None) for r in rows]


def answer(model, entries, vectors, qs):
    q = model.encode([text for text, _, _ in qs], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    sims = q @ vectors.T
    best = sims.argmax(axis=1)
    scores = sims[np.arange(len(qs)), best]
    in_scope = np.array([fid is not None or ans is not None for _, fid, ans in qs])
    correct = np.array([
        (fid is not None and entries[b]["id"] == fid) or (fid is None and ans is not None and entries[b]["answer"] == ans)
        for (_, fid, ans), b in zip(qs, best)])
    return scores, in_scope, correct


def calibrate(scores, correct, target):
    for t in np.unique(scores):  # ascending: the first reaching the target is the lowest
        if correct[scores >= t].mean() >= target:
            return float(t)
    return float(np.nextafter(np.float32(scores.max()), np.float32(np.inf)))


def main():
    parser = argparse.ArgumentParser()
    for name in ("model", "faq", "dev", "test"):
        parser.add_argument(name)
    parser.add_argument("--target-precision", type=float, default=0.9)
    args = parser.parse_args()
    model = SentenceTransformer(args.model, device="cpu")
    entries = table(args.faq)
    vectors = model.encode([e["question"] for e in entries], batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True)
    threshold = calibrate(*answer(model, entries, vectors, questions(args.dev))[::2], args.target_precision)
    scores, in_scope, correct = answer(model, entries, vectors, questions(args.test))
    answered = scores >= threshold
    report = {
        "test": args.test, "threshold": threshold, "questions": len(scores), "in_scope": int(in_scope.sum()),
        "accuracy": float(correct[in_scope].mean()),
        "auroc_correct": float(roc_auc_score(correct, scores)) if 0 < correct.sum() < len(correct) else None,
        "auroc_in_scope": float(roc_auc_score(in_scope, scores)) if 0 < in_scope.sum() < len(in_scope) else None,
        "coverage": float(answered.mean()),
        "precision": float(correct[answered].mean()) if answered.any() else 1.0,
        "in_scope_answered_correctly": float((answered & correct).sum() / in_scope.sum()),
        "out_of_scope_handed_over": float((~answered[~in_scope]).mean()) if (~in_scope).any() else None,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
