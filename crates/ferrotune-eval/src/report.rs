//! seqeval's `classification_report` (default mode) and token accuracy.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::entities::get_entities;

/// Precision, recall, F1 (fractions in 0..1) and support (true entities).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Correct predicted entities / predicted entities (0 when none predicted).
    pub precision: f64,
    /// Correct predicted entities / true entities (0 when none are true).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of true entities.
    pub support: usize,
}

/// The averaged rows of the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Averages {
    /// Over all entities at once.
    pub micro: Scores,
    /// Unweighted mean over types.
    pub macro_avg: Scores,
    /// Mean over types weighted by support.
    pub weighted: Scores,
}

/// An entity-level classification report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Micro average.
    pub micro: Scores,
    /// Macro average.
    #[serde(rename = "macro")]
    pub macro_avg: Scores,
    /// Support-weighted average.
    pub weighted: Scores,
    /// One row per entity type seen in the truth or the predictions.
    pub per_type: BTreeMap<String, Scores>,
    /// Fraction of words whose tag is exactly right.
    pub token_accuracy: f64,
    /// Number of sentences.
    pub sentences: usize,
    /// Number of words.
    pub tokens: usize,
}

pub(crate) fn divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

pub(crate) fn scores(tp: usize, predicted: usize, support: usize) -> Scores {
    let precision = divide(tp as f64, predicted as f64);
    let recall = divide(tp as f64, support as f64);
    let denom = precision + recall;
    let f1 = if denom == 0.0 { 0.0 } else { 2.0 * precision * recall / denom };
    Scores { precision, recall, f1, support }
}

impl Report {
    /// Compares predicted to true tag sequences, sentence by sentence.
    /// Panics if the two differ in shape (a caller bug, not bad input).
    pub fn compute<S: AsRef<str>>(truth: &[Vec<S>], predicted: &[Vec<S>]) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per sentence");
        let mut true_spans: BTreeMap<String, HashSet<(usize, usize, usize)>> = BTreeMap::new();
        let mut pred_spans: BTreeMap<String, HashSet<(usize, usize, usize)>> = BTreeMap::new();
        let (mut tokens, mut correct) = (0, 0);
        for (s, (t, p)) in truth.iter().zip(predicted).enumerate() {
            assert_eq!(t.len(), p.len(), "one predicted tag per word");
            tokens += t.len();
            correct += t.iter().zip(p).filter(|(a, b)| a.as_ref() == b.as_ref()).count();
            for e in get_entities(t) {
                true_spans.entry(e.kind).or_default().insert((s, e.start, e.end));
            }
            for e in get_entities(p) {
                pred_spans.entry(e.kind).or_default().insert((s, e.start, e.end));
            }
        }
        let kinds: BTreeSet<&String> = true_spans.keys().chain(pred_spans.keys()).collect();
        let empty = HashSet::new();
        let mut per_type = BTreeMap::new();
        let (mut tp_all, mut pred_all, mut true_all) = (0, 0, 0);
        for kind in kinds {
            let t = true_spans.get(kind).unwrap_or(&empty);
            let p = pred_spans.get(kind).unwrap_or(&empty);
            let tp = t.intersection(p).count();
            tp_all += tp;
            pred_all += p.len();
            true_all += t.len();
            per_type.insert(kind.clone(), scores(tp, p.len(), t.len()));
        }
        let rows: Vec<&Scores> = per_type.values().collect();
        let n = rows.len() as f64;
        let mean = |f: fn(&Scores) -> f64| divide(rows.iter().map(|s| f(s)).sum(), n);
        let weighted =
            |f: fn(&Scores) -> f64| divide(rows.iter().map(|s| f(s) * s.support as f64).sum(), true_all as f64);
        Self {
            micro: scores(tp_all, pred_all, true_all),
            macro_avg: Scores {
                precision: mean(|s| s.precision),
                recall: mean(|s| s.recall),
                f1: mean(|s| s.f1),
                support: true_all,
            },
            weighted: Scores {
                precision: weighted(|s| s.precision),
                recall: weighted(|s| s.recall),
                f1: weighted(|s| s.f1),
                support: true_all,
            },
            per_type,
            token_accuracy: divide(correct as f64, tokens as f64),
            sentences: truth.len(),
            tokens,
        }
    }

    /// The report as a table, in the layout of seqeval's `classification_report`.
    pub fn to_table(&self) -> String {
        let width = self.per_type.keys().map(|k| k.len()).chain([12]).max().unwrap_or(12);
        let mut out =
            format!("{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n", "", "precision", "recall", "f1-score", "support");
        let row = |name: &str, s: &Scores| {
            format!("{name:>width$}  {:>9.4} {:>9.4} {:>9.4} {:>9}\n", s.precision, s.recall, s.f1, s.support)
        };
        for (kind, s) in &self.per_type {
            out += &row(kind, s);
        }
        out += "\n";
        out += &row("micro avg", &self.micro);
        out += &row("macro avg", &self.macro_avg);
        out += &row("weighted avg", &self.weighted);
        out += &format!(
            "\n{:>width$}  {:>9.4}   ({} sentences, {} tokens)\n",
            "token acc", self.token_accuracy, self.sentences, self.tokens
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &[&[&str]]) -> Vec<Vec<String>> {
        s.iter().map(|t| t.iter().map(|x| x.to_string()).collect()).collect()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Values from Python seqeval 1.2.2 (see scripts/seqeval_cases.py).
    #[test]
    fn matches_seqeval_classification_report() {
        let truth = tags(&[
            &["B-PER", "I-PER", "O", "B-LOC"],
            &["O", "I-PER", "I-PER", "O", "B-ORG"],
            &["B-LOC", "B-LOC", "I-LOC"],
            &["B-PER", "I-LOC", "I-LOC", "O"],
        ]);
        let predicted = tags(&[
            &["B-PER", "I-PER", "O", "O"],
            &["O", "B-PER", "I-PER", "O", "B-LOC"],
            &["B-LOC", "I-LOC", "I-LOC"],
            &["B-PER", "I-LOC", "I-LOC", "B-MISC"],
        ]);
        let r = Report::compute(&truth, &predicted);
        let expected = include_str!("../tests/seqeval_expected.json");
        let e: serde_json::Value = serde_json::from_str(expected).unwrap();
        for (name, s) in [("micro avg", r.micro), ("macro avg", r.macro_avg), ("weighted avg", r.weighted)]
            .into_iter()
            .chain(r.per_type.iter().map(|(k, v)| (k.as_str(), *v)))
        {
            let row = &e[name];
            close(s.precision, row["precision"].as_f64().unwrap());
            close(s.recall, row["recall"].as_f64().unwrap());
            close(s.f1, row["f1-score"].as_f64().unwrap());
            assert_eq!(s.support as u64, row["support"].as_u64().unwrap(), "{name}");
        }
        assert_eq!(r.per_type.len(), 4);
        close(r.token_accuracy, 11.0 / 16.0);
    }

    #[test]
    fn empty_predictions_give_zero_not_nan() {
        let r = Report::compute(&tags(&[&["O", "B-X"]]), &tags(&[&["O", "O"]]));
        assert_eq!(r.micro, Scores { precision: 0.0, recall: 0.0, f1: 0.0, support: 1 });
        let none = Report::compute(&tags(&[&["O"]]), &tags(&[&["O"]]));
        assert_eq!(none.micro.f1, 0.0);
        assert!(none.per_type.is_empty());
    }
}
