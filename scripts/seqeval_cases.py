"""Expected values for ferrotune-eval's report test, from Python seqeval.

Covers the edge cases of seqeval's default mode: I- without B-, adjacent
entities, an entity at sentence end, a type change inside a span, and a type
that is only predicted. Writes crates/ferrotune-eval/tests/seqeval_expected.json.
"""
import json

from seqeval.metrics import classification_report

truth = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["O", "I-PER", "I-PER", "O", "B-ORG"],
    ["B-LOC", "B-LOC", "I-LOC"],
    ["B-PER", "I-LOC", "I-LOC", "O"],
]
predicted = [
    ["B-PER", "I-PER", "O", "O"],
    ["O", "B-PER", "I-PER", "O", "B-LOC"],
    ["B-LOC", "I-LOC", "I-LOC"],
    ["B-PER", "I-LOC", "I-LOC", "B-MISC"],
]
report = classification_report(truth, predicted, output_dict=True, zero_division=0)
report = {k: {m: float(v) if m != "support" else int(v) for m, v in row.items()} for k, row in report.items()}
with open("crates/ferrotune-eval/tests/seqeval_expected.json", "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")
print(json.dumps(report, indent=1))
