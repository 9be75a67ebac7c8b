"""Writes the retrieval files of the COVID FAQ and BANKING77 data sets
(standard library only; run from the repository root; deterministic):

data/covid-faq/retrieval/
  corpus.tsv                       id, text: the 209 FAQ questions
  queries-{train,devel,test}.tsv   query, relevant: the rewordings (similar = 1) with their FAQ id
  pairs-train.tsv                  query, positive: each train rewording with its FAQ question
data/banking77/
  heldout-intents.txt              20 of the 77 intents, random.Random(42).sample(sorted intents, 20), sorted
data/banking77/retrieval/
  pairs-train.tsv                  query, positive: each train utterance with another train utterance
                                   of its intent (random.Random(42), in file order; never the same text)
  pairs-train-inscope.tsv          the rows of pairs-train.tsv whose intent is not held out
  corpus-inscope.tsv, devel-inscope.tsv
                                   text, label: train and devel rows of the 57 other intents (the
                                   dev set of the hand-over model)

BANKING77 by nearest neighbours needs no other file: corpus data/banking77/train.tsv (text, label: ids
are row numbers) and queries data/banking77/test.tsv (a query's relevant entries: its intent's)."""
import csv
import random
from collections import defaultdict

FAQ = "data/covid-faq"
B77 = "data/banking77"


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def write(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            assert all("\t" not in x and "\n" not in x for x in row), row
            f.write("\t".join(row) + "\n")


faq = read(f"{FAQ}/faq.tsv")
question = {row["id"]: row["question"] for row in faq}
write(f"{FAQ}/retrieval/corpus.tsv", ["id", "text"], [(row["id"], row["question"]) for row in faq])
for split in ("train", "devel", "test"):
    rows = [r for r in read(f"{FAQ}/questions-{split}.tsv") if r["similar"] == "1"]
    write(f"{FAQ}/retrieval/queries-{split}.tsv", ["query", "relevant"], [(r["query"], r["faq_id"]) for r in rows])
    if split == "train":
        write(f"{FAQ}/retrieval/pairs-train.tsv", ["query", "positive"],
              [(r["query"], question[r["faq_id"]]) for r in rows])

train = read(f"{B77}/train.tsv")
intents = sorted({r["label"] for r in train})
heldout = sorted(random.Random(42).sample(intents, 20))
with open(f"{B77}/heldout-intents.txt", "w", encoding="utf-8") as f:
    f.write("".join(name + "\n" for name in heldout))

by_intent = defaultdict(list)
for row in train:
    by_intent[row["label"]].append(row["text"])
rng = random.Random(42)
pairs = []
for row in train:
    others = [t for t in by_intent[row["label"]] if t != row["text"]]
    pairs.append((row["text"], rng.choice(others), row["label"]))
write(f"{B77}/retrieval/pairs-train.tsv", ["query", "positive"], [p[:2] for p in pairs])
write(f"{B77}/retrieval/pairs-train-inscope.tsv", ["query", "positive"],
      [p[:2] for p in pairs if p[2] not in heldout])
for name, rows in (("corpus", train), ("devel", read(f"{B77}/devel.tsv"))):
    write(f"{B77}/retrieval/{name}-inscope.tsv", ["text", "label"],
          [(r["text"], r["label"]) for r in rows if r["label"] not in heldout])
