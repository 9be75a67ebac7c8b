//! Reading labelled data for token classification: CoNLL-style files and
//! JSONL, the label set derived from them, and errors that name file and line.

pub mod atomic;
mod error;
mod labels;
mod reader;

pub use error::DataError;
pub use labels::{LabelSet, entity_type};
pub use reader::{read_tagged, TaggedSentence};
