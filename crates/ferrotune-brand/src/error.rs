use std::path::PathBuf;

/// Everything that can be wrong with a scorecard or a brand command.
#[derive(Debug, thiserror::Error)]
pub enum BrandError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The scorecard is not valid TOML or does not have the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and column when TOML knows them).
        message: String,
    },
    /// The scorecard parses but says something impossible.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the term, indicator or scenario.
        message: String,
    },
    /// AHP comparisons too inconsistent to use.
    #[error("{0}")]
    Inconsistent(String),
}
