"""Writes crates/ferrotune-eval/tests/handover_expected.json: random
answer scores (multiples of 1/32, so exact in f32 and often tied) with
right/wrong and in/out-of-scope labels, and what scikit-learn gives for
them: roc_auc_score, and precision_score at every distinct score taken as
the hand-over threshold (coverage: the share at or above it); the
calibrated threshold is the lowest one whose precision reaches the target.
Run once from the repository root; the numbers are stored."""
import json
import random

import numpy as np
from sklearn.metrics import precision_score, roc_auc_score

rng = random.Random(11)
cases = []
for n, levels in ((8, 3), (40, 8), (200, 24)):
    scores = [0.25 + rng.randrange(levels + 1) * (24 // levels) / 32 for _ in range(n)]
    in_scope = [rng.random() < 0.7 for _ in range(n)]
    # Higher scores are more often right: an informative but imperfect score.
    correct = [s and rng.random() < (x - 0.2) * 1.4 for s, x in zip(in_scope, scores)]
    s = np.array(scores)
    curve = []
    for t in sorted(set(scores), reverse=True):
        answered = s >= t
        curve.append({"threshold": t, "coverage": float(answered.mean()),
                      "precision": float(precision_score(correct, answered, zero_division=1))})
    calibration = {}
    for target in (0.5, 0.8, 0.9):
        reached = [p["threshold"] for p in curve if p["precision"] >= target]
        calibration[str(target)] = min(reached) if reached else None
    cases.append({"scores": scores, "in_scope": in_scope, "correct": correct,
                  "auroc_correct": roc_auc_score(correct, scores), "auroc_in_scope": roc_auc_score(in_scope, scores),
                  "curve": curve, "calibration": calibration})
with open("crates/ferrotune-eval/tests/handover_expected.json", "w") as f:
    json.dump(cases, f, indent=1)
