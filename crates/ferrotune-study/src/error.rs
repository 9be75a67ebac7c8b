use std::path::PathBuf;

/// Errors of a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The study file cannot be parsed as TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key of the study file is wrong.
    #[error("{path}: {key}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`space.lr.low`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A line of the journal cannot be read.
    #[error("{path}, line {line}: {message}")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The journal belongs to a study with other settings.
    #[error(
        "cannot resume: {path} was written by another study: {key} is {journal} there, {config} in the study file"
    )]
    JournalMismatch {
        /// The journal.
        path: PathBuf,
        /// The key that differs.
        key: String,
        /// Its value in the journal.
        journal: String,
        /// Its value in the study file.
        config: String,
    },
    /// A study was asked to start where one already is.
    #[error("{path} exists: resume that study (--resume) or choose another output folder")]
    Exists {
        /// The journal found.
        path: PathBuf,
    },
    /// A trial number the study does not have, or not in the state asked.
    #[error("trial {number}: {message}")]
    Trial {
        /// The trial.
        number: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StudyError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
