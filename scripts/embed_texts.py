"""Texts drawn from the repository's data sets, for the embedding scripts
(scripts/embed_parity.py, scripts/bench_embed.py): BANKING77 utterances,
Financial PhraseBank sentences and NCBI-disease sentences (tokens joined by
spaces), shuffled with a seed. Reads only data/ (no network)."""
import csv
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def _tsv_texts(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def _conll_sentences(path):
    sentences, words = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            if words:
                sentences.append(" ".join(words))
            words = []
        else:
            words.append(line.split("\t")[0])
    if words:
        sentences.append(" ".join(words))
    return sentences


def all_texts():
    """Every distinct text of the three data sets (train, devel, test), in a fixed order."""
    texts = []
    for split in ["train", "devel", "test"]:
        texts += _tsv_texts(DATA / "banking77" / f"{split}.tsv")
        texts += _tsv_texts(DATA / "financial-phrasebank" / f"{split}.tsv")
        texts += _conll_sentences(DATA / "ncbi-disease" / f"{split}.tsv")
    return sorted(set(t for t in texts if t.strip()))


def draw(n, seed):
    """`n` texts drawn without replacement with `seed` (repeated if n exceeds the pool)."""
    pool = all_texts()
    rng = random.Random(seed)
    rng.shuffle(pool)
    while len(pool) < n:
        pool += pool
    return pool[:n]
