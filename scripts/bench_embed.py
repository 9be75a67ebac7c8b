"""Throughput and peak memory of `ferrotune embed` beside
`SentenceTransformer.encode` (batch 32, fp32), on the same texts with the
same threads, in alternating runs; prints a markdown table and the ratios.

  python scripts/bench_embed.py [--model models/all-MiniLM-L6-v2] [--n 10000] [--threads 2] [--rounds 3]

Texts: --n drawn (seeded) from data/ (scripts/embed_texts.py). Each run is
a fresh process; throughput counts the embedding only (not the model load),
peak RSS is the whole process's (os.wait4). Needs target/release/ferrotune.
Not a test: nothing in CI runs it. Measure on an otherwise idle machine.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_texts import draw  # noqa: E402


def run_child(cmd):
    """Runs `cmd`; returns (stdout, stderr, peak RSS in MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed:\n{stderr}")
        return stdout, stderr, usage.ru_maxrss / 1024


def ferrotune(args, inputs, output):
    cmd = [args.ferrotune, "embed", "--model", args.model, "--input", inputs, "--output", output,
           "--threads", str(args.threads)]
    _, stderr, rss = run_child(cmd)
    m = re.search(r"embedded (\d+) texts in ([0-9.]+) s", stderr)
    return {"texts": int(m.group(1)), "seconds": float(m.group(2)), "rss_mb": rss}


def sentence_transformers(args, inputs, output):
    cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--threads", str(args.threads),
           "--input", inputs, "--output", output]
    stdout, _, rss = run_child(cmd)
    return dict(json.loads(stdout), rss_mb=rss)


def worker(args):
    """The sentence-transformers side, in its own process."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts = open(args.input, encoding="utf-8").read().splitlines()
    model = SentenceTransformer(args.model, device="cpu")
    start = time.perf_counter()
    with torch.inference_mode():
        embeddings = model.encode(texts, batch_size=32, convert_to_numpy=True)
    seconds = time.perf_counter() - start
    np.save(args.output, embeddings)
    print(json.dumps({"texts": len(texts), "seconds": seconds}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ferrotune", default="target/release/ferrotune")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    runs = {"ferrotune": [], "sentence-transformers": []}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = str(Path(tmp) / "texts.txt")
        Path(inputs).write_text("".join(t.replace("\n", " ") + "\n" for t in draw(args.n, args.seed)), "utf-8")
        for r in range(args.rounds):
            # Alternate which side goes first, so that drifts in load hit both.
            sides = [("ferrotune", ferrotune), ("sentence-transformers", sentence_transformers)]
            for name, side in sides if r % 2 == 0 else sides[::-1]:
                runs[name].append(side(args, inputs, str(Path(tmp) / f"{name}.npy")))
    print(f"{args.n} texts, {args.threads} threads, {args.rounds} rounds (median), load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| | texts/s | peak RSS (MB) |\n|---|---:|---:|")
    summary = {}
    for name, rs in runs.items():
        rate = statistics.median(x["texts"] / x["seconds"] for x in rs)
        rss = statistics.median(x["rss_mb"] for x in rs)
        summary[name] = (rate, rss)
        print(f"| {name} | {rate:.1f} | {rss:.0f} |")
    (fr, fm), (sr, sm) = summary["ferrotune"], summary["sentence-transformers"]
    print(f"\nthroughput ratio {fr / sr:.2f}x (target >= 1.5x); peak RSS ratio {fm / sm:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
