"""Writes the BANKING77 files of the FAQ assistant's hand-over test into a
folder (standard library only, deterministic):

- faq-inscope.tsv: the train utterances of the 57 intents not held out
  (data/banking77/heldout-intents.txt) as FAQ entries: id (row number),
  question (the utterance), answer and intent (its intent); an answer is right
  when it has the question's intent.
- dev.tsv, test.tsv: the devel and test utterances as labelled questions:
  query, answer (the intent; empty for a held-out intent: out of scope, to be
  handed over).
- faq-10k.tsv: the first 10,000 of the train then devel utterances, every
  intent (the latency test's FAQ), and latency-queries.txt: the first 200
  test utterances.

Usage: python3 scripts/faq_banking77.py OUTPUT_DIR
"""
import csv
import os
import sys

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "banking77")


def rows(name):
    with open(os.path.join(DATA, name), newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def write(path, header, records):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for record in records:
            f.write("\t".join(record) + "\n")


def main(out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(DATA, "heldout-intents.txt"), encoding="utf-8") as f:
        heldout = {line.strip() for line in f if line.strip()}
    assert len(heldout) == 20, len(heldout)
    train, devel, test = rows("train.tsv"), rows("devel.tsv"), rows("test.tsv")
    write(os.path.join(out, "faq-inscope.tsv"), ["id", "question", "answer", "intent"],
          [(f"train-{i + 1:05d}", text, label, label) for i, (text, label) in enumerate(train) if label not in heldout])
    for name, split in (("dev.tsv", devel), ("test.tsv", test)):
        write(os.path.join(out, name), ["query", "answer"],
              [(text, "" if label in heldout else label) for text, label in split])
    everything = [(f"train-{i + 1:05d}", t, l) for i, (t, l) in enumerate(train)]
    everything += [(f"devel-{i + 1:05d}", t, l) for i, (t, l) in enumerate(devel)]
    write(os.path.join(out, "faq-10k.tsv"), ["id", "question", "answer"], everything[:10_000])
    with open(os.path.join(out, "latency-queries.txt"), "w", encoding="utf-8") as f:
        f.write("".join(text + "\n" for text, _ in test[:200]))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
