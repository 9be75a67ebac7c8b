"""Writes crates/ferrotune-eval/tests/ir_expected.json: small fixed
embeddings (exact score ties from repeated and coarse vectors, queries with
several relevant ids, a relevant id missing from the corpus, a query with
none) scored by sentence-transformers' InformationRetrievalEvaluator with
cosine similarity and its default cutoffs. The score matrices torch computed
are stored too (as the evaluator computed them, chunk by chunk), so that the
Rust test ranks exactly the same numbers.
Run once from the repository root: .venv/bin/python scripts/ir_reference.py"""
import json
import random

import torch
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.util import cos_sim

rng = random.Random(14)


def case(n_corpus, n_queries, dim, coarse, chunk):
    def vector():
        if coarse:  # few distinct directions: many exactly equal scores
            return [float(rng.choice((-1, 0, 1))) for _ in range(dim)]
        return [rng.gauss(0, 1) for _ in range(dim)]

    corpus_vectors = [vector() for _ in range(n_corpus)]
    for i in range(0, n_corpus, 5):  # repeated entries: exact ties
        corpus_vectors[i] = list(corpus_vectors[rng.randrange(n_corpus)])
    ids = [f"d{i}" for i in rng.sample(range(n_corpus * 3), n_corpus)]  # insertion order is not string order
    queries = {f"q{i}": f"q{i}" for i in range(n_queries)}
    query_vectors = {f"q{i}": vector() for i in range(n_queries)}
    relevant = {}
    for i in range(n_queries):
        relevant[f"q{i}"] = set(rng.sample(ids, rng.randrange(1, 6)))
    relevant["q0"].add("missing")  # counts in recall's denominator, as the evaluator counts it
    del relevant[f"q{n_queries - 1}"]  # no relevant ids: left out

    seen = []  # the score chunks the evaluator ranks (rounding depends on the chunk)

    def cosine(a, b):
        seen.append(cos_sim(a, b))
        return seen[-1]

    evaluator = InformationRetrievalEvaluator(
        queries, dict(zip(ids, ids)), relevant, corpus_chunk_size=chunk, score_functions={"cosine": cosine},
        write_csv=False)
    q = torch.tensor([query_vectors[qid] for qid in evaluator.queries_ids], dtype=torch.float32)
    evaluator.embed_inputs = lambda *args, **kwargs: q
    c = torch.tensor(corpus_vectors, dtype=torch.float32)
    metrics = evaluator.compute_all_metrics(None, corpus_embeddings=c)["cosine"]
    left_out = cos_sim(torch.tensor([query_vectors[f"q{n_queries - 1}"]]), c)
    return {
        "corpus_ids": ids,
        "relevant": [sorted(relevant.get(f"q{i}", ())) for i in range(n_queries)],
        "scores": torch.cat([torch.cat(seen, dim=1), left_out]).tolist(),
        "expected": {f"{name.split('@')[0]}@{k}": float(v) for name, by_k in metrics.items() for k, v in by_k.items()},
        "queries": len(evaluator.queries_ids),
    }


cases = [case(25, 12, 3, True, 7), case(40, 15, 8, False, 50000), case(150, 20, 2, True, 33),
         case(130, 10, 16, False, 40)]
with open("crates/ferrotune-eval/tests/ir_expected.json", "w") as f:
    json.dump(cases, f)
