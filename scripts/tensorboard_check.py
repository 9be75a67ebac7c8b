"""Reads a training run's TensorBoard event file back with the `tensorboard`
package's own reader (records and their CRC32C checked by it) and compares
every scalar with `metrics.jsonl` (issue 17, item 1).

Each metrics line gives the scalars ferrotune writes (see
crates/ferrotune-train/src/events.rs): step lines train/loss, train/lr,
train/grad_norm, train/windows_per_s; epoch lines epoch/train_loss,
epoch/seconds, epoch/windows_per_s, epoch/best_epoch, epoch/dev_score and dev/<every number of
the dev report, nested keys joined by '/'>, at the line's step. The check
passes when the event file holds exactly those (tag, step) pairs, each value
equal to the metrics value rounded to f32, and a file_version event first.

  python scripts/tensorboard_check.py RUN_DIR
"""
import glob
import json
import struct
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def flatten(prefix, value, out):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}/{k}", v, out)


def expected_scalars(metrics_path):
    expected = {}
    for line in open(metrics_path):
        row = json.loads(line)
        step, values = row["step"], {}
        if row["type"] == "step":
            for key in ["loss", "lr", "grad_norm", "windows_per_s"]:
                if key in row:
                    values[f"train/{key}"] = float(row[key])
        elif row["type"] == "epoch":
            for key in ["train_loss", "seconds", "windows_per_s", "best_epoch", "dev_score"]:
                if row.get(key) is not None:
                    values[f"epoch/{key}"] = float(row[key])
            flatten("dev", row.get("dev", {}), values)
        for tag, v in values.items():
            expected[(tag, step)] = f32(v)
    return expected


def main():
    run = sys.argv[1]
    files = sorted(glob.glob(f"{run}/runs/events.out.tfevents.*"))
    if len(files) != 1:
        raise SystemExit(f"{run}/runs: {len(files)} event files, expected 1")
    found, versions, duplicates = {}, [], 0
    for event in EventFileLoader(files[0]).Load():
        if event.HasField("file_version"):
            versions.append(event.file_version)
        for value in event.summary.value:
            if value.HasField("simple_value"):
                v = value.simple_value
            else:
                v = float(tensor_util.make_ndarray(value.tensor))
            key = (value.tag, event.step)
            duplicates += key in found
            found[key] = v
    expected = expected_scalars(f"{run}/metrics.jsonl")
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    unequal = [(k, expected[k], found[k]) for k in expected if k in found and expected[k] != found[k]]
    ok = not missing and not extra and not unequal and duplicates == 0 and versions == ["brain.Event:2"]
    print(json.dumps({"event_file": files[0], "scalars": len(found), "expected": len(expected),
                      "tags": len({t for t, _ in found}), "missing": missing[:5], "extra": extra[:5],
                      "unequal": unequal[:5], "duplicates": duplicates, "file_version": versions, "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
