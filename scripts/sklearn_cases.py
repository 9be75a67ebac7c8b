"""Writes crates/ferrotune-eval/tests/sklearn_expected.json: random
classification, multilabel and regression cases with the metrics
scikit-learn gives, for the text-level metrics test (run once; the numbers
are stored)."""
import json
import random

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, mean_absolute_error,
                             mean_squared_error, precision_recall_fscore_support)

rng = random.Random(7)
cases = {"classify": [], "multilabel": [], "regression": []}
for k in (2, 3, 5):
    for n in (7, 40):
        labels = [f"c{i}" for i in range(k + 1)]  # the last class never occurs
        truth = [rng.randrange(k) for _ in range(n)]
        pred = [t if rng.random() < 0.6 else rng.randrange(k) for t in truth]
        present = sorted(set(truth) | set(pred))
        p, r, f, s = precision_recall_fscore_support(truth, pred, labels=present, zero_division=0)
        avg = {a: precision_recall_fscore_support(truth, pred, average=a, zero_division=0)[:3] for a in ("macro", "weighted")}
        cases["classify"].append({
            "labels": labels, "truth": truth, "pred": pred, "accuracy": accuracy_score(truth, pred),
            "classes": [labels[c] for c in present],
            "per_class": {labels[c]: [p[i], r[i], f[i], int(s[i])] for i, c in enumerate(present)},
            "macro": list(avg["macro"]), "weighted": list(avg["weighted"]),
            "confusion": confusion_matrix(truth, pred, labels=present).tolist()})
for k, n in ((3, 10), (4, 30)):
    labels = [f"l{i}" for i in range(k)]
    truth = [sorted({rng.randrange(k) for _ in range(rng.randrange(3))}) for _ in range(n)]
    pred = [sorted({rng.randrange(k) for _ in range(rng.randrange(3))} | {c for c in t if rng.random() < 0.5}) for t in truth]
    hot = lambda sets: np.array([[int(c in s) for c in range(k)] for s in sets])
    T, P = hot(truth), hot(pred)
    cases["multilabel"].append({
        "labels": labels, "truth": truth, "pred": pred, "subset_accuracy": accuracy_score(T, P),
        "micro": list(precision_recall_fscore_support(T, P, average="micro", zero_division=0)[:3]),
        "macro": list(precision_recall_fscore_support(T, P, average="macro", zero_division=0)[:3]),
        "weighted": list(precision_recall_fscore_support(T, P, average="weighted", zero_division=0)[:3])})
for n in (5, 50):
    truth = [float(rng.randrange(5)) for _ in range(n)]  # many ties
    pred = [t + rng.gauss(0, 1) for t in truth]
    pred[0] = pred[1]
    cases["regression"].append({
        "truth": truth, "pred": pred, "mse": mean_squared_error(truth, pred), "mae": mean_absolute_error(truth, pred),
        "pearson": pearsonr(truth, pred)[0], "spearman": spearmanr(truth, pred)[0]})
with open("crates/ferrotune-eval/tests/sklearn_expected.json", "w") as f:
    json.dump(cases, f, indent=1)
