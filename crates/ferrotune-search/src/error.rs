use std::path::PathBuf;

/// Errors of an index: vectors that do not fit it, and index files that
/// cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A vector or query has another number of coordinates than the index.
    #[error("{what} has {found} coordinates; the index has {expected}")]
    Dimension {
        /// What was given (`vector 'id'`, `query 3`).
        what: String,
        /// The index's dimension.
        expected: usize,
        /// The given one.
        found: usize,
    },
    /// A value that is not a finite number.
    #[error("{what} has a value that is not a finite number")]
    NotFinite {
        /// What was given.
        what: String,
    },
    /// An id that is already in the index.
    #[error("id '{0}' is already in the index")]
    DuplicateId(String),
    /// A setting out of range.
    #[error("{field} must be {expected}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// The allowed range.
        expected: &'static str,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The vectors file cannot be read.
    #[error(transparent)]
    Data(#[from] ferrotune_data::DataError),
    /// An index file is malformed or does not match the others.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
