use std::path::PathBuf;

/// Errors while loading or running a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Neither `tokenizer.json` nor `vocab.txt` is in the model folder.
    #[error("{dir}: no tokenizer found (expected tokenizer.json or vocab.txt)")]
    NoTokenizer {
        /// The model folder.
        dir: PathBuf,
    },
    /// A tokenizer file could not be read or understood.
    #[error("{path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A special token the model needs is not in the vocabulary.
    #[error("the tokenizer has no '{0}' token")]
    MissingSpecialToken(String),
    /// Tokenizing failed.
    #[error("tokenization failed: {0}")]
    Encode(String),
    /// `max_len` leaves no room for content.
    #[error("max-len {0} is too small: it must be at least 3 (CLS, one token, SEP)")]
    MaxLenTooSmall(usize),
}
