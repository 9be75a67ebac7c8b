//! The models behind the server: loaded once at start from folders named on
//! the command line, each answering a batch of inputs with exactly the
//! records `ferrotune predict` writes (both go through
//! `ferrotune_infer::FineTuned`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrotune_data::Task;
use ferrotune_infer::{AdapterHost, FineTuned, RunSettings};

use crate::batcher::{Part, Runner};
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
        Ok(Self {
            model: FineTuned::load(dir, run_settings(options), &options.device)?,
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

/// How the server runs its models.
fn run_settings(options: &ServeOptions) -> RunSettings {
    RunSettings {
        max_len: options.max_len,
        batch_size: options.batch.max_batch,
        // The batcher already hands over slices of at most
        // max_batch_tokens; one input alone may be up to max_len.
        max_batch_tokens: options.batch.max_batch_tokens.max(options.max_len),
        precision: options.precision,
        ..RunSettings::default()
    }
}

/// The base model of the LoRA adapters served (`--adapter NAME=DIR`): one
/// copy of its weights, adapters loaded onto it at start and while
/// serving, batches that mix requests for different adapters run with the
/// base's products once.
pub struct AdapterBase {
    host: AdapterHost,
}

impl AdapterBase {
    /// Reads the base folder.
    pub fn load(dir: &Path, options: &ServeOptions) -> Result<Self, ServeError> {
        Ok(Self { host: AdapterHost::load(dir, run_settings(options), &options.device)? })
    }

    /// Loads the adapter folder `dir` onto the base as `name`.
    pub fn adapter(&self, name: &str, dir: &Path) -> Result<Adapter, ServeError> {
        Ok(Adapter { name: name.to_string(), dir: dir.to_path_buf(), model: self.host.adapter(dir)? })
    }
}

impl Runner for AdapterBase {
    /// Every input needs its adapter: see [`Runner::run_parts`].
    fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        self.run_parts(inputs, &[Part { adapter: None, inputs }])
    }

    fn run_parts(&self, _inputs: &[Input], parts: &[Part]) -> Result<Vec<Record>, ServeError> {
        let parts = parts
            .iter()
            .map(|p| Ok((&p.adapter.ok_or(ServeError::NoAdapter)?.model, p.inputs)))
            .collect::<Result<Vec<_>, ServeError>>()?;
        let outputs = FineTuned::run_grouped(&parts)?;
        Ok(outputs.iter().flat_map(|o| o.records.iter().map(to_json)).collect())
    }
}

/// A LoRA adapter served on the base (`"model": NAME` in a request).
pub struct Adapter {
    name: String,
    dir: PathBuf,
    model: FineTuned,
}

impl Adapter {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its task.
    pub fn task(&self) -> Task {
        self.model.task()
    }

    /// Its labels in id order.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }
}

impl Costs for Adapter {
    fn costs(&self, inputs: &[Input]) -> Result<Vec<usize>, ServeError> {
        Ok(self.model.token_counts(inputs)?)
    }
}

/// An adapter shared by the table of served adapters and the requests
/// queued for it (removing it from the table lets those finish).
pub type SharedAdapter = Arc<Adapter>;

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
