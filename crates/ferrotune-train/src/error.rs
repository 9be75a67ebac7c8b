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
    /// Tagging the dev set failed.
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
    /// The checkpoint cannot be resumed from.
    #[error("cannot resume: {0}")]
    Checkpoint(String),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Options(String),
    /// The loss became NaN or infinite.
    #[error("the loss diverged (NaN or infinite) at step {0}; try a lower --lr")]
    Diverged(u64),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
