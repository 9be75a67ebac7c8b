//! Reading data: labelled CoNLL-style files and JSONL for token
//! classification, TSV/CSV/JSONL texts for sequence classification, the
//! unlabelled inputs of `predict`, retrieval corpora, queries and training
//! pairs, FAQs and the user questions labelled against them, label sets,
//! tasks, atomic writes, `.npy` matrices, and errors that name file and line.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod atomic;
mod error;
mod faq;
mod format;
mod inputs;
mod labels;
pub mod npy;
mod reader;
mod retrieval;
mod table;
mod task;
mod texts;

/// A file `name` holding `content` in a new temporary folder (kept while
/// the returned guard lives): the unit tests' input files.
#[cfg(test)]
pub(crate) fn write_temp(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

pub use error::DataError;
pub use faq::{read_faq, read_faq_questions, Expected, FaqEntry, FaqQuestion};
pub use format::{DataFormat, FileRole};
pub use inputs::{read_inputs, InputReader, NumberedInput, TextInput};
pub use labels::{entity_type, LabelSet};
pub use reader::{read_tagged, read_tagged_as, TaggedSentence};
pub use retrieval::{read_corpus, read_pairs, read_queries, CorpusEntry, RetrievalQuery, TrainingPair};
pub use task::{encode_target, text_labels, SequenceKind, Target, Task, REGRESSION_LABEL};
pub use texts::{read_texts, read_texts_as, TextExample};
