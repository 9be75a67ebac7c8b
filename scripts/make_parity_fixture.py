"""Make the Hugging Face parity fixture for the demo model.

Runs Python `transformers` BertModel on a few pre-split sentences (padded into
one batch) and stores the token ids, attention mask and last hidden state in
crates/ferrotune-model/tests/fixtures/minilm_parity.safetensors, with the
words in minilm_parity.json. The Rust test
crates/ferrotune-model/tests/hf_parity.rs checks ferrotune against it.

Usage: python scripts/make_parity_fixture.py [MODEL_DIR]
(default models/all-MiniLM-L6-v2; needs torch, transformers, safetensors)
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

MODEL = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2")
OUT = pathlib.Path("crates/ferrotune-model/tests/fixtures")
SENTENCES = [
    "Germline mutations in BRCA1 predispose to breast and ovarian cancer .".split(),
    "Ataxia - telangiectasia ( A - T ) is a recessive disorder .".split(),
    "Haemophilia B".split(),
]

tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModel.from_pretrained(MODEL).eval()
batch = tokenizer(SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
OUT.mkdir(parents=True, exist_ok=True)
save_file(
    {
        "input_ids": batch["input_ids"].to(torch.int64).contiguous(),
        "attention_mask": batch["attention_mask"].to(torch.int64).contiguous(),
        "last_hidden_state": hidden.to(torch.float32).contiguous(),
    },
    OUT / "minilm_parity.safetensors",
)
(OUT / "minilm_parity.json").write_text(json.dumps({"sentences": SENTENCES}, indent=1) + "\n")
print("wrote", OUT, tuple(hidden.shape))
