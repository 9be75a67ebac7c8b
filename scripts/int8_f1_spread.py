"""How far NCBI entity F1 moves under int8 quantizers that are equally good:
the evidence behind the README's int8 accuracy paragraph.

  python scripts/int8_f1_spread.py MODEL_FOLDER TEST.tsv

Runs the token classifier in PyTorch, fp32, then with every encoder linear
layer quantized as ferrotune's int8 does it (weights symmetric per output
channel to ±127; activations per row, asymmetric, the row's range with 0 in
it onto the codes 0..TOP), for several TOP: 255 (ferrotune's VNNI and AMX
paths), 127 (its AVX2 path) and two codes one step either side of 255's
resolution. Also weights only and activations only. For each: entity micro F1
(seqeval), its change from fp32, the words whose tag differs from fp32's and
the root-mean-square logit error. Each sentence alone, cut at 128 tokens, a
word's tag read from its first sub-token, as ferrotune reads it. 2 threads.
"""
import sys

import torch
from seqeval.metrics import f1_score
from transformers import AutoModelForTokenClassification, AutoTokenizer


def read_conll(path):
    sents, tags, words, labels = [], [], [], []
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if not parts:
            if words:
                sents.append(words), tags.append(labels)
            words, labels = [], []
            continue
        words.append(parts[0]), labels.append(parts[-1])
    if words:
        sents.append(words), tags.append(labels)
    return sents, tags


def quantize_weight(w):
    scale = (w.abs().amax(1, keepdim=True) / 127).clamp(min=1e-12)
    return torch.round(w / scale).clamp(-127, 127) * scale


def quantize_rows(x, top):
    lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / top).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, top) - zero) * scale


def encoder_linears(model):
    for layer in model.base_model.encoder.layer:
        yield from (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                    layer.attention.output.dense, layer.intermediate.dense, layer.output.dense)


def run(folder, sents, weights, top):
    """Logits and word tags of every sentence; `weights` and `top` (None: fp32) say what is quantized."""
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    for lin in encoder_linears(model):
        if weights:
            lin.weight.data = quantize_weight(lin.weight.data)
        if top is not None:
            lin.forward = lambda x, lin=lin: torch.nn.functional.linear(quantize_rows(x, top), lin.weight, lin.bias)
    logits, preds = [], []
    with torch.no_grad():
        for words in sents:
            enc = TOKENIZER(words, is_split_into_words=True, truncation=True, max_length=128, return_tensors="pt")
            out = model(**enc).logits[0]
            tags, prev = ["O"] * len(words), None
            for pos, w in enumerate(enc.word_ids(0)):
                if w is not None and w != prev:
                    tags[w] = model.config.id2label[int(out[pos].argmax())]
                prev = w
            logits.append(out), preds.append(tags)
    return logits, preds


folder, test = sys.argv[1:3]
torch.set_num_threads(2)
TOKENIZER = AutoTokenizer.from_pretrained(folder)
sents, gold = read_conll(test)
ref_logits, ref_tags = run(folder, sents, False, None)
ref_f1 = f1_score(gold, ref_tags) * 100
print(f"{'quantized':<34} {'F1':>6} {'change':>7} {'words changed':>14} {'logit rms err':>14}")
print(f"{'nothing (fp32)':<34} {ref_f1:6.2f}")
variants = [(f"weights + activations 0..{t}", True, t) for t in (255, 254, 256, 127)]
variants += [("weights only", True, None), ("activations only 0..255", False, 255)]
for name, weights, top in variants:
    logits, tags = run(folder, sents, weights, top)
    f1 = f1_score(gold, tags) * 100
    changed = sum(a != b for p, r in zip(tags, ref_tags) for a, b in zip(p, r))
    err = torch.cat([(a - b).reshape(-1) for a, b in zip(logits, ref_logits)]).pow(2).mean().sqrt()
    print(f"{name:<34} {f1:6.2f} {f1 - ref_f1:+7.2f} {changed:14d} {err.item():14.4f}")
