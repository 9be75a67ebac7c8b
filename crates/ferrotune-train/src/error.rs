use std::path::{Path, PathBuf};

/// Errors while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] ferrotune_data::DataError),
    /// Loading or saving the model failed.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// The tokenizer failed.
    #[error(transparent)]
    Text(#[from] ferrotune_text::TextError),
    /// Scoring the dev set failed.
    #[error(transparent)]
    Infer(#[from] ferrotune_infer::InferError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a run's log (or its `run.json`) cannot be read.
    #[error("{path}, line {line}: {message}")]
    RunLog {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A checkpoint file cannot be read back.
    #[error("cannot resume: {path}: {message}")]
    CheckpointFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The checkpoint was made with other options (only `epochs` may grow).
    #[error(
        "cannot resume: {dir} was made with other options: {}; rerun with the same options (only epochs may grow)",
        changes.iter().map(|(k, saved, now)| format!("{k} {saved} (now {now})")).collect::<Vec<_>>().join(", ")
    )]
    CheckpointOptions {
        /// The checkpoint folder.
        dir: PathBuf,
        /// Each changed option: its field, the checkpoint's value, the new value.
        changes: Vec<(String, String, String)>,
    },
    /// The checkpoint was made for other labels.
    #[error("cannot resume: {dir} has other labels")]
    CheckpointLabels {
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// An option is out of range.
    #[error("{field} must be {expected}")]
    InvalidOption {
        /// The option's field name.
        field: &'static str,
        /// The allowed range.
        expected: &'static str,
    },
    /// `max_len` is more than the model has positions.
    #[error("max_len {max_len} is more than the model's max_position_embeddings {positions} ({path})")]
    MaxLenOverPositions {
        /// The asked tokens per window.
        max_len: usize,
        /// The model's `max_position_embeddings`.
        positions: usize,
        /// The model's `config.json`.
        path: PathBuf,
    },
    /// A retrieval dev set needs both its queries and its corpus.
    #[error("retrieval: the dev queries (dev) and the corpus they search (dev_corpus) go together")]
    RetrievalDev,
    /// The loss became NaN or infinite.
    #[error("the loss diverged (NaN or infinite) at step {step}; try a lower learning rate")]
    Diverged {
        /// The optimizer step.
        step: u64,
    },
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
