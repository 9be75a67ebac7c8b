"""Entity micro F1 (seqeval) of an ONNX Runtime token classifier on a CoNLL
file: the int8 accuracy comparison of the README's "On a processor with AMX".

  python scripts/onnx_ner_f1.py FOLDER ONNX_FILE TEST.tsv

FOLDER is what scripts/onnx_export.py wrote (tokenizer files and config.json
with id2label beside model.onnx and model-int8.onnx). Each sentence is run
alone, cut at 128 tokens; a word's tag is read from its first sub-token, as
ferrotune reads it. 2 threads.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer
from seqeval.metrics import f1_score
folder, onnx_file, data = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(folder)
id2label = {int(k): v for k, v in json.load(open(f"{folder}/config.json"))["id2label"].items()}
sents, tags, cur_w, cur_t = [], [], [], []
for line in open(data, encoding="utf-8"):
    line = line.rstrip("\n")
    if not line.strip():
        if cur_w: sents.append(cur_w); tags.append(cur_t); cur_w, cur_t = [], []
        continue
    parts = line.split()
    cur_w.append(parts[0]); cur_t.append(parts[-1])
if cur_w: sents.append(cur_w); tags.append(cur_t)
so = ort.SessionOptions(); so.intra_op_num_threads = 2
sess = ort.InferenceSession(f"{folder}/{onnx_file}", so, providers=["CPUExecutionProvider"])
names = [i.name for i in sess.get_inputs()]
preds = []
for s in sents:
    enc = tok(s, is_split_into_words=True, truncation=True, max_length=128, return_tensors="np")
    feeds = {n: enc[n].astype(np.int64) for n in names if n in enc}
    if "token_type_ids" in names and "token_type_ids" not in feeds: feeds["token_type_ids"] = np.zeros_like(enc["input_ids"])
    logits = sess.run(["logits"], feeds)[0][0]
    wid = enc.word_ids(0); out = ["O"] * len(s); prev = None
    for pos, w in enumerate(wid):
        if w is not None and w != prev: out[w] = id2label[int(logits[pos].argmax())]
        prev = w
    preds.append(out)
print(onnx_file, round(f1_score(tags, preds) * 100, 2))
