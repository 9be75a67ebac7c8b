//! Reading labelled data: CoNLL-style files and JSONL for token
//! classification, TSV/CSV/JSONL texts for sequence classification, label
//! sets, and errors that name file and line.

pub mod atomic;
mod error;
mod labels;
mod reader;
mod task;
mod texts;

pub use error::DataError;
pub use labels::{LabelSet, entity_type};
pub use reader::{read_tagged, TaggedSentence};
pub use task::{encode_target, text_labels, Target, Task, REGRESSION_LABEL};
pub use texts::{read_texts, TextExample};
