"""Expected decisions for ferrotune-study's pruners, from Optuna itself.

Studies of 20 trials of up to 4 epochs whose per-epoch scores are fixed
(seeded random learning curves) run through Optuna's MedianPruner (its
defaults) and SuccessiveHalvingPruner (min_resource 1, reduction factor 3),
one trial after another as `ferrotune search` runs them; each trial's
state and the epochs it reached are written to
crates/ferrotune-study/src/pruner_cases.json, which a unit test of
crates/ferrotune-study/src/pruner.rs replays (same scores, same decisions).

  .venv/bin/python scripts/pruner_cases.py
"""
import json
import os

import numpy as np
import optuna

PRUNERS = [
    ({"type": "median"}, lambda: optuna.pruners.MedianPruner()),
    ({"type": "asha", "reduction_factor": 3}, lambda: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=3)),
    ({"type": "asha", "reduction_factor": 2, "min_early_stopping_rate": 1},
     lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2, min_early_stopping_rate=1)),
]


def curves(seed, n=20, epochs=4):
    rng = np.random.RandomState(seed)
    start, gain = rng.uniform(0.2, 0.7, n), rng.uniform(0.0, 0.3, n)
    noise = rng.normal(0, 0.02, (n, epochs))
    return [[float(start[t] + gain[t] * (1 - 0.5 ** (e + 1)) + noise[t, e]) for e in range(epochs)] for t in range(n)]


def main():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for config, make in PRUNERS:
        for seed in (0, 1, 2):
            study = optuna.create_study(direction="maximize", pruner=make())
            trials = []
            for scores in curves(seed):
                trial = study.ask()
                state = "complete"
                for epoch, score in enumerate(scores, start=1):
                    trial.report(score, epoch)
                    if trial.should_prune():
                        state = "pruned"
                        break
                if state == "pruned":
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, max(scores))
                trials.append({"scores": scores, "state": state, "epochs": epoch})
            out.append({"pruner": config, "seed": seed, "trials": trials})
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "ferrotune-study", "src", "pruner_cases.json")
    with open(path, "w") as f:
        json.dump({"optuna": optuna.__version__, "cases": out}, f)
        f.write("\n")
    print(f"{len(out)} studies written to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
