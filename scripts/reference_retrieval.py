"""sentence-transformers reference for retrieval: the same data and recipe
as `ferrotune eval --task retrieval` / `ferrotune train --task retrieval`.
Zero-shot and fine-tuned (MultipleNegativesRankingLoss over cosine
similarity with the same scale, NoDuplicatesBatchSampler batches, AdamW
with weight decay 0.01 (none on biases and LayerNorm), linear decay after
warmup, clipping 1.0, a fixed number of epochs, the last epoch kept; the
loop of the Trainer written out, which needs no `accelerate`), each scored
by InformationRetrievalEvaluator (cosine). Prints them beside ferrotune's
numbers, read from `ferrotune eval --task retrieval --json` files.

  python scripts/reference_retrieval.py --dataset covid --epochs 5 \\
      --ferrotune runs/retrieval/covid-zero.json runs/retrieval/covid-tuned.json
  python scripts/reference_retrieval.py --dataset banking77 --epochs 1 \\
      --ferrotune runs/retrieval/b77-zero.json runs/retrieval/b77-tuned.json

The sentence-transformers results are kept in runs/retrieval/st-<dataset>.json
(delete it to run them again); the fine-tuned model in runs/retrieval/st-<dataset>-model.
"""
import argparse
import csv
import json
import math
import os
import time
from collections import defaultdict

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import cos_sim
from transformers import get_linear_schedule_with_warmup

DATASETS = {
    # train pairs, corpus, test queries
    "covid": ("data/covid-faq/retrieval/pairs-train.tsv", "data/covid-faq/retrieval/corpus.tsv",
              "data/covid-faq/retrieval/queries-test.tsv"),
    "banking77": ("data/banking77/retrieval/pairs-train.tsv", "data/banking77/train.tsv", "data/banking77/test.tsv"),
    "banking77-inscope": ("data/banking77/retrieval/pairs-train-inscope.tsv",
                          "data/banking77/retrieval/corpus-inscope.tsv", "data/banking77/retrieval/devel-inscope.tsv"),
}
SHOWN = ["mrr@10", "ndcg@10", "map@100", "accuracy@1", "accuracy@5", "recall@10"]


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def evaluator(corpus_path, queries_path):
    """The corpus and queries as ferrotune reads them: ids from `id` or the
    row number; relevant ids from `relevant` (|-separated) or `label`."""
    corpus_rows = read(corpus_path)
    corpus = {r.get("id") or str(i + 1): r["text"] for i, r in enumerate(corpus_rows)}
    by_label = defaultdict(set)
    for i, r in enumerate(corpus_rows):
        if r.get("label"):
            by_label[r["label"]].add(r.get("id") or str(i + 1))
    queries, relevant = {}, {}
    for i, r in enumerate(read(queries_path)):
        qid = f"q{i}"
        queries[qid] = r.get("query") or r["text"]
        relevant[qid] = set(r["relevant"].split("|")) if "relevant" in r else by_label[r["label"]]
    return InformationRetrievalEvaluator(queries, corpus, relevant, score_functions={"cosine": cos_sim},
                                         batch_size=64, write_csv=False)


def scores(model, ir):
    result = ir.compute_all_metrics(model)["cosine"]
    return {f"{name.split('@')[0]}@{k}": float(v) for name, by_k in result.items() for k, v in by_k.items()}


def run(args, out):
    pairs_path, corpus_path, queries_path = DATASETS[args.dataset]
    torch.manual_seed(args.seed)
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_len
    ir = evaluator(corpus_path, queries_path)
    zero = scores(model, ir)
    pairs = read(pairs_path)
    train = Dataset.from_dict({"query": [p["query"] for p in pairs], "positive": [p["positive"] for p in pairs]})
    sampler = NoDuplicatesBatchSampler(train, batch_size=args.batch_size, drop_last=False,
                                       generator=torch.Generator(), seed=args.seed)
    loss = MultipleNegativesRankingLoss(model, scale=args.scale)
    no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
    groups = [{"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    total = len(sampler) * args.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(args.warmup_ratio * total), total)
    model.train()
    started = time.time()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for step, ids in enumerate(sampler):
            rows = train[ids]
            features = [model.tokenize(rows["query"]), model.tokenize(rows["positive"])]
            value = loss(features, None)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if step % 50 == 0:
                print(f"epoch {epoch + 1} step {step} loss {value.item():.4f}", flush=True)
    seconds = time.time() - started
    model.eval()
    model.save(f"runs/retrieval/st-{args.dataset}-model")
    tuned = scores(model, ir)
    result = {"zero_shot": zero, "fine_tuned": tuned, "train_seconds": seconds, "recipe": vars(args)}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ferrotune", nargs=2, metavar=("ZERO_SHOT_JSON", "FINE_TUNED_JSON"))
    args = parser.parse_args()
    ferrotune_files = args.ferrotune
    del args.ferrotune
    os.makedirs("runs/retrieval", exist_ok=True)
    out = f"runs/retrieval/st-{args.dataset}.json"
    if os.path.exists(out):
        with open(out) as f:
            result = json.load(f)
    else:
        result = run(args, out)
    ours = {}
    if ferrotune_files:
        for key, path in zip(("zero_shot", "fine_tuned"), ferrotune_files):
            if os.path.exists(path):
                with open(path) as f:
                    ours[key] = json.load(f)
    print(f"{args.dataset}: sentence-transformers vs ferrotune (recipe {result['recipe']})")
    print(f"{'':12} {'metric':>11} {'sent-tr':>8} {'ferrotune':>9} {'diff (pt)':>9}")
    for key in ("zero_shot", "fine_tuned"):
        for metric in SHOWN:
            theirs = result[key][metric]
            mine = ours.get(key, {}).get(metric)
            cells = f"{mine:>9.4f} {100 * (mine - theirs):>+9.2f}" if mine is not None else f"{'-':>9} {'':>9}"
            print(f"{key:12} {metric:>11} {theirs:>8.4f} {cells}")


if __name__ == "__main__":
    main()
