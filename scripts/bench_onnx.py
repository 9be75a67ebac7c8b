"""ONNX Runtime side of scripts/bench_precision.sh: the forward and tagging
workloads on a file made by scripts/onnx_export.py (model.onnx, fp32, or
model-int8.onnx, int8 dynamic quantization), printing one JSON line.

  python scripts/bench_onnx.py forward --onnx runs/onnx/model-int8.onnx --batch 32 --len 64 --threads 2
  python scripts/bench_onnx.py tag --onnx runs/onnx/model.onnx --input sentences.txt --threads 2

forward: --warmup untimed then --runs timed calls of session.run for the
logits of a seeded random batch (token ids in [1000, 20000), all-ones
attention mask, zero token types), as scripts/bench_torch.py forward.
tag: the whole tagging job in one process; the caller times the process, the
JSON's "seconds" is the time inside it from the start of main().
"""
import argparse
import json
import os
import resource
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def session(path, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def forward(args):
    t0 = time.perf_counter()
    sess = session(args.onnx, args.threads)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, size=(args.batch, args.len), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    times = []
    for run in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        sess.run(["logits"], feeds)
        if run >= args.warmup:
            times.append(time.perf_counter() - t0)
    return {"workload": "forward", "runtime": "onnxruntime", "model": os.path.basename(args.onnx),
            "batch": args.batch, "len": args.len, "load_s": load_s, "times_s": times}


def transformers_encoder(folder, max_len):
    """transformers.AutoTokenizer (imports torch: about 2-3 s of start-up)."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def encode(batch):
        enc = tokenizer(batch, is_split_into_words=True, truncation=True, max_length=max_len,
                        padding=True, return_tensors="np")
        ids = enc["input_ids"].astype(np.int64)
        types = enc["token_type_ids"] if "token_type_ids" in enc else np.zeros_like(ids)
        feeds = {"input_ids": ids, "attention_mask": enc["attention_mask"].astype(np.int64),
                 "token_type_ids": types.astype(np.int64)}
        return feeds, [enc.word_ids(row) for row in range(len(batch))]

    return encode


def hf_tokenizers_encoder(folder, max_len):
    """The `tokenizers` library on the folder's tokenizer.json, without
    transformers (and so without importing torch); the same ids."""
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)  # counts the special tokens, as transformers does
    pad = tokenizer.token_to_id("[PAD]") or 0
    tokenizer.enable_padding(pad_id=pad, pad_token="[PAD]")

    def encode(batch):
        encs = tokenizer.encode_batch(batch, is_pretokenized=True)
        feeds = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}
        return feeds, [e.word_ids for e in encs]

    return encode


def tag(args):
    """One sentence per line, words separated by spaces; the tag of a word is
    the argmax of its first sub-token. Sentences are tokenised (--tokenizer)
    with the tokenizer files beside the .onnx file and truncated at --max-len
    tokens: words past the cut get no tag and are counted in
    "truncated_words" (the NCBI sentences fit, so no windowing is done).
    Sorted by length so each batch of --batch-size is padded only to its own
    longest. Writes no tags, only their counts."""
    t0 = time.perf_counter()
    folder = os.path.dirname(os.path.abspath(args.onnx))
    encode = (hf_tokenizers_encoder if args.tokenizer == "tokenizers" else transformers_encoder)(folder, args.max_len)
    sess = session(args.onnx, args.threads)
    id2label = {}
    config = os.path.join(folder, "config.json")
    if os.path.exists(config):
        with open(config) as f:
            id2label = {int(k): v for k, v in json.load(f).get("id2label", {}).items()}
    load_s = time.perf_counter() - t0
    with open(args.input, encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    counts, words, truncated = {}, 0, 0
    for start in range(0, len(order), args.batch_size):
        batch = [sentences[i] for i in order[start:start + args.batch_size]]
        feeds, word_ids = encode(batch)
        tags = sess.run(["logits"], feeds)[0].argmax(-1)
        for row, ws in enumerate(batch):
            seen, prev = 0, None
            for pos, w in enumerate(word_ids[row]):
                if w is not None and w != prev:
                    label = id2label.get(int(tags[row, pos]), str(int(tags[row, pos])))
                    counts[label] = counts.get(label, 0) + 1
                    seen += 1
                prev = w
            words += len(ws)
            truncated += len(ws) - seen
    return {"workload": "tag", "runtime": "onnxruntime", "model": os.path.basename(args.onnx),
            "tokenizer": args.tokenizer, "sentences": len(sentences), "words": words, "truncated_words": truncated,
            "tag_counts": counts, "load_s": load_s, "seconds": time.perf_counter() - T_START}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["forward", "tag"])
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--len", type=int)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--tokenizer", choices=["transformers", "tokenizers"], default="transformers",
                    help="tag: transformers.AutoTokenizer (default) or the tokenizers library alone")
    args = ap.parse_args()
    if args.workload == "forward" and (args.batch is None or args.len is None):
        ap.error("forward needs --batch and --len")
    if args.workload == "tag" and not args.input:
        ap.error("tag needs --input")
    record = {"forward": forward, "tag": tag}[args.workload](args)
    record["threads"] = args.threads
    record["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
