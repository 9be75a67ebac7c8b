use ferrotune_data::Task;

/// Errors while loading, running or evaluating a fine-tuned model.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Loading the model failed.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// Loading or running the tokenizer failed.
    #[error(transparent)]
    Text(#[from] ferrotune_text::TextError),
    /// Reading a data file failed.
    #[error(transparent)]
    Data(#[from] ferrotune_data::DataError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An input of a kind the model cannot take (e.g. a text pair for NER).
    #[error("input {index}: a {task} model takes {expected}")]
    UnsupportedInput {
        /// The input's position in the batch.
        index: usize,
        /// The model's task.
        task: Task,
        /// What the model takes.
        expected: &'static str,
    },
    /// A labelled set was scored by a model of another task.
    #[error("a {model} model cannot score a labelled set of another task")]
    TaskMismatch {
        /// The model's task.
        model: Task,
    },
    /// A labelled file or a fine-tuned head was asked of a retrieval model,
    /// which embeds texts and is scored against a corpus.
    #[error("a retrieval model has no labels or head: evaluate it with queries against a corpus (eval --task retrieval --corpus --queries)")]
    RetrievalModel,
    /// `--precision` differs from the precision the folder was quantized to.
    #[error("{path}: the model is quantized to {saved}; run it in {saved} (asked: {asked})")]
    PrecisionMismatch {
        /// The folder's `config.json`.
        path: std::path::PathBuf,
        /// The folder's precision.
        saved: ferrotune_model::quant::Precision,
        /// The precision asked for.
        asked: ferrotune_model::quant::Precision,
    },
    /// Models loaded apart (not by one `AdapterHost`) were asked to run in
    /// one batch.
    #[error("only models loaded by one adapter host (one base, one tokenizer, the same settings) run in one batch")]
    NotOneBase,
    /// A setting is out of range.
    #[error("{field} must be {expected}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// The allowed range.
        expected: &'static str,
    },
    /// `max_len` is more than the model has positions.
    #[error("max_len {max_len} is more than the model's max_position_embeddings {positions} (config.json)")]
    MaxLenOverPositions {
        /// The asked tokens per input.
        max_len: usize,
        /// The model's `max_position_embeddings`.
        positions: usize,
    },
}
