"""Expected values for ferrotune-study's TPE densities, from Optuna itself.

For each case (a search-space entry, observed values, points), the log
density of Optuna's Parzen estimator with TPESampler's defaults (prior
weight 1, magic clip, no endpoints, default weights, independent) at the
points. Writes crates/ferrotune-study/src/tpe_cases.json, which a unit test
of crates/ferrotune-study/src/tpe.rs compares with (1e-9).

  .venv/bin/python scripts/tpe_cases.py     # needs optuna (requirements-reference.txt)
"""
import json
import os

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

PARAMETERS = _ParzenEstimatorParameters(
    prior_weight=1.0, consider_magic_clip=True, consider_endpoints=False, weights=default_weights, multivariate=False)

rng = np.random.RandomState(0)
CASES = [
    ({"type": "float", "low": 0.0, "high": 0.2}, [0.05, 0.11, 0.19, 0.02], [0.0, 0.01, 0.05, 0.1, 0.15, 0.2]),
    ({"type": "float", "low": 0.0, "high": 0.2}, [], [0.0, 0.1, 0.2]),
    ({"type": "float", "low": 0.0, "high": 0.2}, [0.07], [0.0, 0.07, 0.2]),
    ({"type": "float", "low": 1e-5, "high": 3e-4, "log": True}, [2e-5, 1e-4, 2.5e-4], [1e-5, 3e-5, 1e-4, 3e-4]),
    ({"type": "float", "low": -1.0, "high": 4.0}, list(rng.uniform(-1, 4, 30)), [-1.0, 0.0, 1.5, 3.9]),
    ({"type": "int", "low": 1, "high": 6}, [2, 2, 5], [1, 2, 3, 4, 5, 6]),
    ({"type": "int", "low": 4, "high": 64, "log": True}, [8, 16, 60], [4, 5, 16, 63, 64]),
    ({"type": "categorical", "values": [8, 16, 32]}, [8, 32, 32], [8, 16, 32]),
    ({"type": "categorical", "values": ["a", "b"]}, [], ["a", "b"]),
]


def distribution(param):
    if param["type"] == "float":
        return FloatDistribution(param["low"], param["high"], log=param.get("log", False))
    if param["type"] == "int":
        return IntDistribution(param["low"], param["high"], log=param.get("log", False))
    return CategoricalDistribution(param["values"])


def main():
    out = []
    for param, observations, points in CASES:
        dist = distribution(param)
        internal = lambda values: np.array([dist.to_internal_repr(v) for v in values], dtype=float)
        estimator = _ParzenEstimator({"x": internal(observations)}, {"x": dist}, PARAMETERS)
        log_pdf = estimator.log_pdf({"x": internal(points)})
        out.append({"param": param, "observations": [float(v) if param["type"] == "float" else v for v in observations],
                     "points": points, "log_pdf": [float(v) for v in log_pdf]})
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "ferrotune-study", "src", "tpe_cases.json")
    with open(path, "w") as f:
        json.dump({"optuna": optuna.__version__, "cases": out}, f, indent=1)
        f.write("\n")
    print(f"{len(out)} cases written to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
