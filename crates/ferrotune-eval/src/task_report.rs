//! The report of any task, so that callers (the CLI, the trainer's dev
//! pass) handle one type.

use serde::Serialize;

use crate::{Report, RetrievalReport, TextReport};

/// An entity report (NER), a text-level report (sequence tasks) or a
/// retrieval report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TaskReport {
    /// Tags per word, scored by entity (seqeval).
    Entities(Report),
    /// A class, classes or a number per text (scikit-learn).
    Text(TextReport),
    /// Queries against a corpus (sentence-transformers' evaluator).
    Retrieval(RetrievalReport),
}

impl TaskReport {
    /// The number that picks the best epoch (higher is better): entity
    /// micro F1, MRR@10, or see [`TextReport::score`].
    pub fn score(&self) -> f64 {
        match self {
            TaskReport::Entities(r) => r.micro.f1,
            TaskReport::Text(r) => r.score(),
            TaskReport::Retrieval(r) => r.score(),
        }
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        match self {
            TaskReport::Entities(r) => {
                format!("P {:.4} R {:.4} F1 {:.4}", r.micro.precision, r.micro.recall, r.micro.f1)
            }
            TaskReport::Text(r) => r.summary(),
            TaskReport::Retrieval(r) => r.summary(),
        }
    }

    /// The full report as text.
    pub fn to_table(&self) -> String {
        match self {
            TaskReport::Entities(r) => r.to_table(),
            TaskReport::Text(r) => r.to_table(),
            TaskReport::Retrieval(r) => r.to_table(),
        }
    }
}
