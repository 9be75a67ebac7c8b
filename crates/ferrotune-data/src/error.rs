use std::path::PathBuf;

/// Everything that can go wrong while reading a data file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line could not be understood.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file holds no sentence at all.
    #[error("{path}: no sentences found (empty file?)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A format that does not apply to this kind of file.
    #[error("{path}: the {format} format does not apply here; expected {expected}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format asked for.
        format: &'static str,
        /// The formats that apply.
        expected: &'static str,
    },
    /// A `.npy` file is not a float32 matrix, or is cut short.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The label set is not a valid IOB2 tag set.
    #[error("invalid label '{label}': expected 'O' or 'B-<TYPE>' / 'I-<TYPE>'")]
    InvalidLabel {
        /// The offending label.
        label: String,
    },
}
