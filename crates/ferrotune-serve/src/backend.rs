//! The models behind the server: loaded once at start from folders named on
//! the command line, each answering a batch of inputs with exactly the
//! records `ferrotune predict` writes (both go through
//! `ferrotune_infer::FineTuned`).

use std::path::Path;

use ferrotune_data::Task;
use ferrotune_infer::{FineTuned, RunSettings};

use crate::{ServeError, ServeOptions};

/// One input: a text, or a text pair (sequence models only).
pub type Input = ferrotune_data::TextInput;

/// A loaded model.
pub struct Backend {
    model: FineTuned,
}

impl Backend {
    /// Loads a fine-tuned model folder of any task.
    pub fn load(dir: &Path, options: &ServeOptions) -> Result<Self, ServeError> {
        let settings = RunSettings {
            max_len: options.max_len,
            batch_size: options.batch.max_batch,
            precision: options.precision,
            ..RunSettings::default()
        };
        Ok(Self { model: FineTuned::load(dir, settings, &options.device)? })
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
        Ok(self.model.run(inputs)?.records.iter().map(to_json).collect())
    }
}

/// One answer, serialised once, exactly as `ferrotune predict` writes it.
pub type Record = Box<serde_json::value::RawValue>;

fn to_json(record: &ferrotune_infer::Record) -> Record {
    serde_json::value::to_raw_value(record).expect("records serialise")
}
