"""Embeddings of `ferrotune embed` against `SentenceTransformer(folder).encode`
on texts drawn (seeded) from the repository's data sets; prints the largest
absolute difference per coordinate. Exit code 1 above --tolerance.

  python scripts/embed_parity.py [--model models/all-MiniLM-L6-v2] [--n 500] [--seed 0]

Run it on the demo model, or on a folder saved by `ferrotune train --task retrieval`.
Needs target/release/ferrotune (cargo build --release).
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_texts import draw  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ferrotune", default="target/release/ferrotune")
    p.add_argument("--tolerance", type=float, default=1e-5)
    args = p.parse_args()
    texts = draw(args.n, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = Path(tmp) / "texts.txt", Path(tmp) / "out.npy"
        inputs.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        subprocess.run([args.ferrotune, "embed", "--model", args.model, "--input", str(inputs),
                        "--output", str(output)], check=True)
        ours = np.load(output)
    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    theirs = model.encode(texts, batch_size=32, convert_to_numpy=True)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    diff = np.abs(ours - theirs)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    worst = int(diff.max(1).argmax())
    print(f"model {args.model}: {len(texts)} texts (seed {args.seed}), {ours.shape[1]} dims")
    print(f"max |difference| per coordinate: {diff.max():.3g} (mean {diff.mean():.3g}; worst text #{worst})")
    print(f"min cosine(ferrotune, sentence-transformers): {cos.min():.8f}")
    ok = diff.max() <= args.tolerance
    print(f"{'PASS' if ok else 'FAIL'}: tolerance {args.tolerance:g}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
