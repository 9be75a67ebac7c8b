use std::path::{Path, PathBuf};

/// Everything that can go wrong while building, opening or asking a FAQ index.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// A data file (the FAQ, labelled questions) could not be read.
    #[error(transparent)]
    Data(#[from] ferrotune_data::DataError),
    /// Loading or running a model failed.
    #[error(transparent)]
    Infer(#[from] ferrotune_infer::InferError),
    /// The index's vectors could not be searched or read.
    #[error(transparent)]
    Search(#[from] ferrotune_search::SearchError),
    /// A file of the index could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file of the index is not what its manifest says (truncated,
    /// altered) or cannot be understood.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The index was built with another embedding model than the one asked
    /// to query it.
    #[error(
        "{index}: built with the embedding model {built_path} (identity {built}); {model} has identity {given}: \
         rebuild the index with this model or query it with that one"
    )]
    ModelMismatch {
        /// The index folder.
        index: PathBuf,
        /// The model folder the index was built with.
        built_path: PathBuf,
        /// Its identity.
        built: String,
        /// The model folder given.
        model: PathBuf,
        /// Its identity.
        given: String,
    },
    /// A labelled question names a FAQ id the index does not hold.
    #[error("{path}:{line}: no FAQ entry has the id '{id}'")]
    UnknownFaqId {
        /// The questions file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The id.
        id: String,
    },
    /// A question to answer is empty.
    #[error("question {index} is empty")]
    EmptyQuestion {
        /// Its 0-based position among the questions asked.
        index: usize,
    },
    /// An option is out of range.
    #[error("{field} must be {expected}")]
    InvalidOption {
        /// The option.
        field: &'static str,
        /// The allowed range.
        expected: &'static str,
    },
}

impl AssistantError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AssistantError::Io { path: path.to_path_buf(), source }
    }

    /// A corrupt-file error on `path`.
    pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> Self {
        AssistantError::Corrupt { path: path.to_path_buf(), message: message.into() }
    }
}
