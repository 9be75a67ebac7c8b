"""ONNX Runtime side of scripts/bench_precision.sh: exports a BERT token
classifier to ONNX (fp32) and makes its int8 dynamic quantization.

  python scripts/onnx_export.py --model DIR --output DIR [--force]

Writes OUTPUT/model.onnx (torch.onnx.export, opset 17, dynamic batch and
sequence axes, inputs input_ids / attention_mask / token_type_ids, output
logits), OUTPUT/model-int8.onnx (onnxruntime.quantization.quantize_dynamic,
QInt8 weights, one scale per output channel), the exported model's
config.json (with the head's id2label) and copies of the tokenizer files, so
OUTPUT can be given to AutoTokenizer.

The model is AutoModelForTokenClassification.from_pretrained(DIR): a folder
that already is a token classifier keeps its own head; any other BERT folder
gets a seeded random 3-tag head (enough for timing). Idempotent: nothing is
redone when both outputs exist and are newer than the model's weights,
unless --force.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import time

TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def newest_weights_mtime(model_dir):
    paths = [p for pattern in ("*.safetensors", "*.bin", "config.json")
             for p in glob.glob(os.path.join(model_dir, pattern))]
    if not paths:
        sys.exit(f"no model weights in {model_dir}")
    return max(os.path.getmtime(p) for p in paths)


def up_to_date(outputs, model_dir):
    if not all(os.path.exists(p) for p in outputs):
        return False
    return min(os.path.getmtime(p) for p in outputs) > newest_weights_mtime(model_dir)


def load_model(model_dir):
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification
    torch.manual_seed(0)  # the random head, when there is one, is the same every time
    config = AutoConfig.from_pretrained(model_dir)
    # Eager attention exports the classic MatMul / Softmax pattern that ORT's
    # attention fusion recognises (an SDPA export does not fuse as well).
    kwargs = {"attn_implementation": "eager"}
    if not any(a.endswith("ForTokenClassification") for a in (config.architectures or [])):
        labels = ["O", "B-Disease", "I-Disease"]
        kwargs.update(num_labels=3, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model = AutoModelForTokenClassification.from_pretrained(model_dir, **kwargs)
    model.eval()
    return model


def export(model_dir, path, opset):
    import torch
    model = load_model(model_dir)

    class Logits(torch.nn.Module):
        """One output, `logits`; positional inputs in `input_names` order."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    ids = torch.randint(1000, 20000, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    axes = {0: "batch", 1: "sequence"}
    tmp = path + ".tmp"
    with torch.inference_mode():
        torch.onnx.export(Logits().eval(), (ids, mask, types), tmp, dynamo=False, opset_version=opset,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "logits": axes},
                          do_constant_folding=True)
        expected = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.numpy()
    os.replace(tmp, path)
    # The exported head's config (its id2label, also for a random head), for
    # AutoTokenizer and for naming the tags.
    model.config.architectures = [type(model).__name__]
    model.config.to_json_file(os.path.join(os.path.dirname(path), "config.json"))
    return ids.numpy(), mask.numpy(), types.numpy(), expected


def quantize(src, dst):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = dst + ".tmp"
    quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True)
    os.replace(tmp, dst)


def max_abs_diff(path, feeds, expected):
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], feeds)[0]
    return float(np.abs(got - expected).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.makedirs(args.output, exist_ok=True)
    fp32 = os.path.join(args.output, "model.onnx")
    int8 = os.path.join(args.output, "model-int8.onnx")
    record = {"workload": "onnx-export", "model": args.model, "output": args.output}
    if not args.force and up_to_date([fp32, int8], args.model):
        record["skipped"] = True
    else:
        t0 = time.perf_counter()
        ids, mask, types, expected = export(args.model, fp32, args.opset)
        record["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantize(fp32, int8)
        record["quantize_s"] = time.perf_counter() - t0
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        # Sanity check of both files against PyTorch on the export's sample batch.
        record["fp32_max_abs_diff"] = max_abs_diff(fp32, feeds, expected)
        record["int8_max_abs_diff"] = max_abs_diff(int8, feeds, expected)
        record["skipped"] = False
    for name in TOKENIZER_FILES:
        src = os.path.join(args.model, name)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(args.output, name))
    if not os.path.exists(os.path.join(args.output, "config.json")):
        shutil.copy2(os.path.join(args.model, "config.json"), os.path.join(args.output, "config.json"))
    record["bytes"] = {os.path.basename(p): os.path.getsize(p) for p in (fp32, int8)}
    print(json.dumps(record))


if __name__ == "__main__":
    main()
