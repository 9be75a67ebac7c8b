"""Side-by-side benchmark of the lower precisions: ferrotune fp32 / bf16 /
int8 against PyTorch + transformers (fp32 eager, bf16 autocast) and ONNX
Runtime (fp32, int8 dynamic per-channel quantization of the same model),
same machine, shapes and threads; run through scripts/bench_precision.sh.

Each workload runs in fresh processes, the runtimes alternating, for
--rounds rounds. Forward rows give the median of the timed runs of every
process; the tagging row times the whole process (start, load, tokenize,
run, write) on the 940 NCBI-disease test sentences. The train-step row is a
forward with dropout, loss, backward, clipping and AdamW at 16 x 128 (fp32
and bf16 mixed precision against PyTorch fp32 and bf16 autocast); the epoch
row (`--workloads ...,epoch`, minutes per run) times one NCBI-disease
training epoch with its dev pass, whole process. Ratios are peer time /
ferrotune time (above 1: ferrotune is faster).
"""
import argparse
import json
import os
import shutil
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench import last_json  # noqa: E402
from bench import run as run_process  # noqa: E402


def run(cmd, env=None):
    """Runs a command (see bench.run); returns (stdout, wall seconds, peak RSS bytes)."""
    stdout, _, wall, rss = run_process(cmd, env)
    return stdout, wall, rss
FORWARDS = [(1, 32, 3, 20), (32, 64, 2, 5)]
TRAIN_STEP = (16, 128, 2, 5)
WORKLOADS = ("forward", "tag", "train-step", "epoch")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ferrotune", default=os.path.join(ROOT, "target/release/ferrotune"))
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--workloads", default="forward,tag,train-step",
                    help=f"comma-separated, of {','.join(WORKLOADS)} (epoch: one NCBI-disease training epoch per "
                         "runtime and round, several minutes each)")
    args = ap.parse_args()
    workloads = args.workloads.split(",")
    if not set(workloads) <= set(WORKLOADS):
        ap.error(f"--workloads: choose from {','.join(WORKLOADS)}")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    th = ["--threads", str(args.threads)]
    ft, py = [args.ferrotune], [args.python]
    work = os.path.join(ROOT, "runs", "bench-precision")
    os.makedirs(work, exist_ok=True)

    # One fine-tuned-shaped model for every runtime: a token-classification
    # folder (random 3-tag head), its ONNX exports, its quantized folders.
    model = os.path.join(work, "model")
    if not os.path.exists(os.path.join(model, "config.json")):
        run(py + ["scripts/bench_torch.py", "make-model", "--model", args.model, "--output", model], env)
    onnx = os.path.join(work, "onnx")
    if {"forward", "tag"} & set(workloads):
        run(py + ["scripts/onnx_export.py", "--model", model, "--output", onnx], env)
        for p in ("int8", "bf16"):
            run(ft + ["quantize", "--model", model, "--output", os.path.join(work, f"model-{p}"), "--precision", p]
                + th)
    texts = os.path.join(work, "ncbi-test.txt")
    from conll import read_conll
    test = read_conll(os.path.join(ROOT, "data/ncbi-disease/test.tsv"))
    with open(texts, "w") as f:
        f.writelines(" ".join(words) + "\n" for words, _ in test)

    runtimes = {
        "PyTorch fp32": lambda shape: py + ["scripts/bench_torch.py", "forward"] + shape,
        "PyTorch bf16 autocast": lambda shape: py + ["scripts/bench_torch_bf16.py", "forward"] + shape,
        "ONNX Runtime fp32": lambda shape: py + ["scripts/bench_onnx.py", "forward", "--onnx",
                                                 os.path.join(onnx, "model.onnx")] + shape[2:],
        "ONNX Runtime int8": lambda shape: py + ["scripts/bench_onnx.py", "forward", "--onnx",
                                                 os.path.join(onnx, "model-int8.onnx")] + shape[2:],
    }
    for p in ("fp32", "bf16", "int8"):
        runtimes[f"ferrotune {p}"] = lambda shape, p=p: ft + ["bench", "forward", "--precision", p] + shape
    rows = []
    for batch, length, warmup, runs in FORWARDS if "forward" in workloads else []:
        shape = ["--model", model, "--batch", str(batch), "--len", str(length), "--warmup", str(warmup),
                 "--runs", str(runs)] + th
        times = {name: [] for name in runtimes}
        for _ in range(args.rounds):
            for name, cmd in runtimes.items():
                times[name] += last_json(run(cmd(shape), env)[0])["times_s"]
        rows.append({"workload": f"forward {batch} x {length}", "unit": "ms",
                     **{name: statistics.median(t) * 1000 for name, t in times.items()}})
        print(rows[-1], file=sys.stderr)

    tag = {
        "ONNX Runtime fp32": py + ["scripts/bench_onnx.py", "tag", "--onnx", os.path.join(onnx, "model.onnx"),
                                   "--input", texts, "--tokenizer", "tokenizers"] + th,
        "ONNX Runtime int8": py + ["scripts/bench_onnx.py", "tag", "--onnx", os.path.join(onnx, "model-int8.onnx"),
                                   "--input", texts, "--tokenizer", "tokenizers"] + th,
    }
    for p, folder in (("fp32", model), ("bf16", model + "-bf16"), ("int8", model + "-int8")):
        tag[f"ferrotune {p}"] = ft + ["predict", "--model", folder, "--input", texts, "--output",
                                      os.path.join(work, f"tags-{p}.jsonl")] + th
    if "tag" in workloads:
        walls, rss = whole_processes(tag, args.rounds, env)
        rows.append({"workload": f"tag the {len(test)} NCBI test sentences, whole process", "unit": "s", **walls})
        rows.append({"workload": "  its peak RSS", "unit": "MB", **rss})

    if "train-step" in workloads:
        batch, length, warmup, runs = TRAIN_STEP
        shape = ["--model", model, "--batch", str(batch), "--len", str(length), "--warmup", str(warmup),
                 "--runs", str(runs)] + th
        step = {"PyTorch fp32": py + ["scripts/bench_torch.py", "train-step"] + shape,
                "PyTorch bf16 autocast": py + ["scripts/bench_torch_bf16.py", "train-step"] + shape}
        for p in ("fp32", "bf16"):
            step[f"ferrotune {p}"] = ft + ["bench", "train-step", "--precision", p] + shape
        times = {name: [] for name in step}
        for _ in range(args.rounds):
            for name, cmd in step.items():
                times[name] += last_json(run(cmd, env)[0])["times_s"]
        rows.append({"workload": f"train step {batch} x {length}", "unit": "ms",
                     **{name: statistics.median(t) * 1000 for name, t in times.items()}})
        print(rows[-1], file=sys.stderr)

    if "epoch" in workloads:
        # One epoch of the default recipe with its dev pass, whole process
        # (start, load, tokenize, train, evaluate dev, save).
        reference = py + ["scripts/reference_ner.py", "--epochs", "1", "--no-test"] + th
        epoch = {"PyTorch fp32": reference, "PyTorch bf16 autocast": reference + ["--bf16"]}
        for p in ("fp32", "bf16"):
            epoch[f"ferrotune {p}"] = ft + ["train", "--model", args.model, "--train", "data/ncbi-disease/train.tsv",
                                            "--dev", "data/ncbi-disease/devel.tsv", "--epochs", "1", "--precision",
                                            p, "--output", os.path.join(work, f"epoch-{p}")] + th
        walls, rss = whole_processes(epoch, args.rounds, env, before=lambda: shutil.rmtree(
            os.path.join(work, "epoch-fp32"), ignore_errors=True) or shutil.rmtree(
            os.path.join(work, "epoch-bf16"), ignore_errors=True))
        rows.append({"workload": "one NCBI-disease training epoch, whole process", "unit": "s", **walls})
        rows.append({"workload": "  its peak RSS", "unit": "MB", **rss})
    print_table(rows, args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)


def whole_processes(commands, rounds, env, before=lambda: None):
    """Runs each command `rounds` times, alternating; returns the median wall
    seconds and the peak RSS (MB) of each."""
    walls, rss = {name: [] for name in commands}, {}
    for _ in range(rounds):
        for name, cmd in commands.items():
            before()
            _, wall, peak = run(cmd, env)
            walls[name].append(wall)
            rss[name] = max(rss.get(name, 0), peak / 1e6)
            print(name, f"{wall:.1f} s", file=sys.stderr)
    return {name: statistics.median(w) for name, w in walls.items()}, rss


def print_table(rows, threads):
    names = ["PyTorch fp32", "PyTorch bf16 autocast", "ONNX Runtime fp32", "ONNX Runtime int8",
             "ferrotune fp32", "ferrotune bf16", "ferrotune int8"]
    print(f"\nlower precisions, {threads} threads (medians; whole-process rows: wall time of the process)\n")
    print("| workload | " + " | ".join(names) + " | int8 vs ORT int8 | int8 vs PyTorch fp32 | bf16 vs PyTorch bf16 |")
    print("|---|" + "---|" * (len(names) + 3))
    for r in rows:
        cells = [f"{r[n]:.1f} {r['unit']}" if n in r else "-" for n in names]
        ratio = lambda peer, ours: (f"{r[peer] / r[ours]:.2f}x" if peer in r and ours in r and r["unit"] != "MB"
                                    else "-")
        print(f"| {r['workload']} | " + " | ".join(cells) + f" | {ratio('ONNX Runtime int8', 'ferrotune int8')} | "
              f"{ratio('PyTorch fp32', 'ferrotune int8')} | {ratio('PyTorch bf16 autocast', 'ferrotune bf16')} |")


if __name__ == "__main__":
    main()
