"""One table for the NER comparison: PyTorch reference runs (the JSON summary
line printed by scripts/reference_ner.py, in its log) next to ferrotune runs
(metrics.jsonl and the `ferrotune eval --json` report in the output folder).

  python scripts/ner_table.py --torch design=runs/torch-design.log --torch tuned=runs/torch-tuned.log \
      --ferrotune design=runs/ft-design --ferrotune default=runs/ft-default
"""
import argparse
import json
import pathlib


def torch_row(name, log):
    summary = [json.loads(l) for l in open(log) if l.startswith("{") and "test_f1" in l][-1]
    return ["PyTorch + transformers", name, summary["best_epoch"], summary["dev_f1"], summary["test_f1"],
            summary["train_sentences_per_s"]]


def ferrotune_row(name, folder):
    folder = pathlib.Path(folder)
    epochs = [json.loads(l) for l in open(folder / "metrics.jsonl") if '"type":"epoch"' in l]
    best = max(epochs, key=lambda e: e["dev"]["micro"]["f1"])
    report = json.load(open(folder / "test-report.json"))
    rate = sum(e["windows_per_s"] * e["seconds"] for e in epochs) / sum(e["seconds"] for e in epochs)
    return ["ferrotune", name, best["epoch"], best["dev"]["micro"]["f1"], report["micro"]["f1"], rate]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", action="append", default=[], help="NAME=LOG")
    ap.add_argument("--ferrotune", action="append", default=[], help="NAME=OUTPUT_DIR")
    args = ap.parse_args()
    rows = [torch_row(*t.split("=", 1)) for t in args.torch] + [ferrotune_row(*f.split("=", 1)) for f in args.ferrotune]
    print("| implementation | recipe | best epoch | dev F1 | test F1 (micro) | train sentences/s |")
    print("|---|---|---|---|---|---|")
    for impl, recipe, epoch, dev, test, rate in rows:
        print(f"| {impl} | {recipe} | {epoch} | {dev:.4f} | {test:.4f} | {rate:.1f} |")


if __name__ == "__main__":
    main()
