//! The models behind the server: loaded once at start from folders named on
//! the command line, each answering a batch of inputs with exactly the
//! records `ferrotune predict` writes (both go through
//! `ferrotune_infer::FineTuned`).

use std::path::Path;

use ferrotune_data::Task;
use ferrotune_infer::{FineTuned, RunSettings};

use crate::batcher::Runner;
use crate::{ServeError, ServeOptions};

/// One input: a text, or a text pair (sequence models only).
pub type Input = ferrotune_data::TextInput;

/// A loaded model.
pub struct Backend {
    model: FineTuned,
    /// With the `test-support` feature: a text that makes a model call panic
    /// (from `FERROTUNE_TEST_PANIC_ON`), for the tests of panic recovery.
    #[cfg(feature = "test-support")]
    panic_on: Option<String>,
}

impl Backend {
    /// Loads a fine-tuned model folder of any task; `max_len` must fit the
    /// model's positions.
    pub fn load(dir: &Path, options: &ServeOptions) -> Result<Self, ServeError> {
        let settings = RunSettings {
            max_len: options.max_len,
            batch_size: options.batch.max_batch,
            // The batcher already hands over slices of at most
            // max_batch_tokens; one input alone may be up to max_len.
            max_batch_tokens: options.batch.max_batch_tokens.max(options.max_len),
            precision: options.precision,
            ..RunSettings::default()
        };
        Ok(Self {
            model: FineTuned::load(dir, settings, &options.device)?,
            #[cfg(feature = "test-support")]
            panic_on: std::env::var("FERROTUNE_TEST_PANIC_ON").ok(),
        })
    }

    /// The model's task.
    pub fn task(&self) -> Task {
        self.model.task()
    }

    /// The model's labels in id order.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// The `predict` record of every input, in order.
    pub fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        #[cfg(feature = "test-support")]
        if let Some(text) = &self.panic_on {
            if inputs.iter().any(|i| matches!(i, Input::Text(t) if t == text)) {
                panic!("test-support: asked to panic on {text:?}");
            }
        }
        Ok(self.model.run(inputs)?.records.iter().map(to_json).collect())
    }
}

/// Counts the tokens each input of a request costs, before it is queued.
pub trait Costs: Send + Sync + 'static {
    /// The tokens of every input, special tokens included.
    fn costs(&self, inputs: &[Input]) -> Result<Vec<usize>, ServeError>;
}

impl Costs for Backend {
    /// NER: every window of the text; sequence models: the encoded (cut) input.
    fn costs(&self, inputs: &[Input]) -> Result<Vec<usize>, ServeError> {
        Ok(self.model.token_counts(inputs)?)
    }
}

impl Runner for Backend {
    fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        Backend::run(self, inputs)
    }
}

/// One answer, serialised once, exactly as `ferrotune predict` writes it.
pub type Record = Box<serde_json::value::RawValue>;

fn to_json(record: &ferrotune_infer::Record) -> Record {
    serde_json::value::to_raw_value(record).expect("records serialise")
}
