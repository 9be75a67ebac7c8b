"""PyTorch bf16 side of scripts/bench_precision.sh: scripts/bench_torch.py's
forward and train-step workloads under torch.autocast("cpu", bfloat16), with
the same command line and JSON fields plus "precision": "bf16".

  python scripts/bench_torch_bf16.py forward --batch 32 --len 64 --threads 2
  python scripts/bench_torch_bf16.py train-step --batch 16 --len 48 --threads 2

forward: inference_mode + autocast. train-step: autocast around the forward
and the loss only; fp32 master weights, gradients and AdamW state (what
autocast mixed precision is on CPU; no loss scaling is needed for bf16), the
same recipe as bench_torch.py (AdamW lr 1e-5, weight decay 0.01 except
biases and LayerNorm, gradient clipping at 1.0).
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import peak_rss_bytes, setup  # noqa: E402

AUTOCAST = dict(device_type="cpu", dtype=torch.bfloat16)


def forward(args):
    model, ids, mask, load_s = setup(args)
    model.eval()
    times = []
    with torch.inference_mode(), torch.autocast(**AUTOCAST):
        for run in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask).logits.float().numpy()
            if run >= args.warmup:
                times.append(time.perf_counter() - t0)
    return {"workload": "forward", "batch": args.batch, "len": args.len, "load_s": load_s, "times_s": times}


def train_step(args):
    model, ids, mask, load_s = setup(args)
    model.train()
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
    ], lr=1e-5)
    labels = (torch.arange(args.batch * args.len) % 3).reshape(args.batch, args.len)
    times, fwd, bwd, optim = [], [], [], []
    for run in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        with torch.autocast(**AUTOCAST):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        if run >= args.warmup:
            times.append(t3 - t0)
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            optim.append(t3 - t2)
    return {"workload": "train-step", "batch": args.batch, "len": args.len, "load_s": load_s, "times_s": times,
            "phases_s": {"forward": fwd, "backward": bwd, "optimizer": optim}, "final_loss": loss.item()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["forward", "train-step"])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--len", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    record = {"forward": forward, "train-step": train_step}[args.workload](args)
    record["precision"] = "bf16"
    record["threads"] = torch.get_num_threads()
    record["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
