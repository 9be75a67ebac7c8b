"""Side-by-side benchmark: ferrotune against PyTorch + transformers on the
same machine, shapes and threads, fp32; run through scripts/bench.sh.

Each workload runs in fresh processes, alternating ferrotune and PyTorch for
--rounds rounds; per-step workloads time --runs steps after --warmup untimed
ones in each process. The table gives medians over all timed runs, the
speed-up (PyTorch time / ferrotune time), the achieved GFLOP/s (matrix
products only, training counted as 3x forward) beside this machine's measured
fp32 peak, and each side's peak RSS (largest over its processes).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_WORKLOADS = [
    ("forward", 1, 32, 3, 20),
    ("forward", 32, 64, 2, 5),
    ("train-step", 16, 48, 2, 5),
    ("train-step", 16, 128, 2, 5),
]


def run(cmd, env=None):
    """Runs a command to completion; returns (stdout, stderr, wall seconds,
    peak RSS bytes of that process from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}")
    return stdout, stderr, wall, rusage.ru_maxrss * 1024


def last_json(text):
    return json.loads([l for l in text.splitlines() if l.startswith("{")][-1])


def forward_flops(config, batch, length):
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    tokens = batch * length
    per_layer = 2 * tokens * (4 * h * h + 2 * h * i) + 2 * 2 * batch * length * length * h
    return layers * per_layer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ferrotune", default=os.path.join(ROOT, "target/release/ferrotune"))
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="per-step workloads only (no epoch, no predict)")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    with open(os.path.join(ROOT, args.model, "config.json")) as f:
        config = json.load(f)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    ft = [args.ferrotune]
    py = [args.python, "scripts/bench_torch.py"]
    rows = []
    peak = last_json(run(ft + ["bench", "peak", "--threads", str(args.threads)])[0])["gflops"]
    print(f"measured fp32 peak: {peak:.0f} GFLOP/s on {args.threads} threads", file=sys.stderr)

    for workload, batch, length, warmup, runs in STEP_WORKLOADS:
        shape = ["--model", args.model, "--batch", str(batch), "--len", str(length), "--warmup", str(warmup),
                 "--runs", str(runs), "--threads", str(args.threads)]
        res = {"ferrotune": [], "pytorch": []}
        for _ in range(args.rounds):
            res["ferrotune"].append(last_json(run(ft + ["bench", workload] + shape)[0]))
            res["pytorch"].append(last_json(run(py + [workload] + shape, env)[0]))
        flops = forward_flops(config, batch, length) * (3 if workload == "train-step" else 1)
        row = {"workload": f"{workload} {batch} x {length}", "unit": "s", "lower_is_better": True, "flops": flops}
        for side, records in res.items():
            times = [t for r in records for t in r["times_s"]]
            row[side] = {"value": statistics.median(times), "rss": max(r["peak_rss_bytes"] for r in records),
                         "runs": len(times)}
            if workload == "train-step":
                row[side]["phases"] = {k: statistics.median([t for r in records for t in r["phases_s"][k]])
                                       for k in ("forward", "backward", "optimizer")}
        rows.append(row)
        print(f"{row['workload']}: ferrotune {row['ferrotune']['value']:.4f} s, "
              f"pytorch {row['pytorch']['value']:.4f} s", file=sys.stderr)

    if not args.quick:
        rows += whole_process_rows(args, ft, py, env)

    print_table(rows, peak, args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "threads": args.threads, "rows": rows}, f, indent=1)


def whole_process_rows(args, ft, py, env):
    from conll import read_conll
    tmp = tempfile.mkdtemp(prefix="ferrotune-bench-")
    test = read_conll(os.path.join(ROOT, "data/ncbi-disease/test.tsv"))
    train_n = len(read_conll(os.path.join(ROOT, "data/ncbi-disease/train.tsv")))
    texts = os.path.join(tmp, "test.txt")
    with open(texts, "w") as f:
        for words, _ in test:
            f.write(" ".join(words) + "\n")
    model = os.path.join(tmp, "model")
    run(py + ["make-model", "--model", args.model, "--output", model], env)
    threads = ["--threads", str(args.threads)]
    rows = []

    predict = {"ferrotune": [], "pytorch": []}
    for _ in range(args.rounds):
        out, err, wall, rss = run(ft + ["predict", "--model", model, "--input", texts, "--output",
                                        os.path.join(tmp, "ft.jsonl")] + threads)
        m = re.search(r"ran (\d+) sentences in ([\d.]+) s", err)
        predict["ferrotune"].append((wall, float(m.group(2)), rss))
        out, err, wall, rss = run(py + ["predict", "--model", model, "--input", texts, "--output",
                                        os.path.join(tmp, "py.jsonl")] + threads, env)
        predict["pytorch"].append((wall, last_json(out)["predict_s"], rss))
    for label, index in (("predict NCBI test, whole process", 0), ("predict NCBI test, model load excluded", 1)):
        row = {"workload": label, "unit": "sentences/s", "lower_is_better": False}
        for side, records in predict.items():
            row[side] = {"value": len(test) / statistics.median(r[index] for r in records),
                         "rss": max(r[2] for r in records), "runs": len(records)}
        rows.append(row)

    epoch = {}
    _, _, wall, rss = run(ft + ["train", "--model", args.model, "--train", "data/ncbi-disease/train.tsv", "--dev",
                           "data/ncbi-disease/devel.tsv", "--output", os.path.join(tmp, "ft-epoch"), "--epochs", "1",
                           "--batch-size", "16"] + threads)
    epoch["ferrotune"] = {"value": train_n / wall, "rss": rss, "runs": 1}
    _, _, wall, rss = run(py[:1] + ["scripts/reference_ner.py", "--model", args.model, "--epochs", "1", "--no-test"]
                       + threads, env)
    epoch["pytorch"] = {"value": train_n / wall, "rss": rss, "runs": 1}
    rows.append({"workload": "one NCBI-disease epoch (+ dev eval), whole process", "unit": "sentences/s",
                 "lower_is_better": False, **epoch})
    return rows


def print_table(rows, peak, threads):
    print(f"\nferrotune vs PyTorch + transformers, {threads} threads, fp32; "
          f"this machine's measured fp32 peak: {peak:.0f} GFLOP/s\n")
    print("| workload | PyTorch | ferrotune | speed-up | GFLOP/s PyTorch / ferrotune | peak RSS PyTorch | peak RSS ferrotune | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, f = r["pytorch"], r["ferrotune"]
        if r["lower_is_better"]:
            fmt = lambda v: f"{v * 1000:.1f} ms" if v < 1 else f"{v:.3f} s"
            speedup = p["value"] / f["value"]
            gf = f"{r['flops'] / p['value'] / 1e9:.0f} / {r['flops'] / f['value'] / 1e9:.0f}"
        else:
            fmt = lambda v: f"{v:.1f} {r['unit']}"
            speedup = f["value"] / p["value"]
            gf = "-"
        gib = lambda b: f"{b / 2**30:.2f} GiB"
        print(f"| {r['workload']} | {fmt(p['value'])} | {fmt(f['value'])} | {speedup:.2f}x | {gf} | "
              f"{gib(p['rss'])} | {gib(f['rss'])} | {f['rss'] / p['rss']:.2f} |")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    main()
