//! Sentence embeddings: a BERT encoder with the pooling of a
//! sentence-transformers folder (mean, CLS, max or mean/sqrt(length) of the
//! token states, optionally normalised), loaded from and saved to the
//! layout `SentenceTransformer(folder)` reads.

mod encoder;
mod folder;
mod pooling;

pub use encoder::SentenceEncoder;
pub use folder::{read_sentence_folder, SentenceFolder};
pub use pooling::{normalize_rows, PoolingMode, SentencePooling};
