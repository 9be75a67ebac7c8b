"""CoNLL reading shared by the Python reference scripts (the same format as
ferrotune's reader: token first, tag last, blank lines between sentences)."""


def read_conll(path):
    sentences, tokens, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences
