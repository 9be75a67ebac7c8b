/// Errors while tagging.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Loading the model failed.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// Loading or running the tokenizer failed.
    #[error(transparent)]
    Text(#[from] ferrotune_text::TextError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An input line could not be understood.
    #[error("{source_name}:{line}: {message}")]
    Input {
        /// The input's name (file path or `<stdin>`).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}
