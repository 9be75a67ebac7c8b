//! FAQ indexes behind `/v1/answer`, and their embedding models behind
//! `/v1/embed`: each index has two batching threads (answers and
//! embeddings) sharing one loaded assistant.

use std::path::Path;
use std::sync::Arc;

use ferrotune_assistant::{FaqAssistant, OpenOptions};
use ferrotune_infer::RunSettings;

use crate::backend::{Costs, Input, Record};
use crate::batcher::{Batcher, Runner};
use crate::metrics::Metrics;
use crate::{ServeError, ServeOptions};

/// A loaded FAQ index and its two batching threads.
pub(crate) struct Faq {
    assistant: Arc<FaqAssistant>,
    /// Answers questions (`/v1/answer`).
    pub answers: Batcher,
    /// Embeds texts with the index's model (`/v1/embed`).
    pub embeddings: Batcher,
}

/// The texts of inputs (the FAQ routes queue texts only).
fn texts(inputs: &[Input]) -> Vec<String> {
    inputs.iter().filter_map(|i| if let Input::Text(t) = i { Some(t.clone()) } else { None }).collect()
}

fn raw(value: &impl serde::Serialize) -> Record {
    serde_json::value::to_raw_value(value).expect("answers serialise")
}

struct Answers(Arc<FaqAssistant>);
struct Embeddings(Arc<FaqAssistant>);

impl Runner for Answers {
    fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        Ok(self.0.ask(&texts(inputs))?.iter().map(raw).collect())
    }
}

impl Runner for Embeddings {
    fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        let texts = texts(inputs);
        let embeddings = self.0.embedder().embed(&texts)?;
        let records = texts.iter().zip(embeddings.rows());
        Ok(records.map(|(text, row)| raw(&serde_json::json!({ "text": text, "embedding": row }))).collect())
    }
}

/// The tokens of each text under the index's embedding model.
pub(crate) struct FaqCosts(Arc<FaqAssistant>);

impl Costs for FaqCosts {
    fn costs(&self, inputs: &[Input]) -> Result<Vec<usize>, ServeError> {
        Ok(self.0.embedder().token_counts(&texts(inputs))?)
    }
}

impl Faq {
    /// Opens the index folder `dir` with the model it was built with, and
    /// starts its threads.
    pub fn load(name: &str, dir: &Path, options: &ServeOptions, metrics: &Arc<Metrics>) -> Result<Self, ServeError> {
        let settings = RunSettings {
            max_len: options.max_len,
            batch_size: options.batch.max_batch,
            max_batch_tokens: options.batch.max_batch_tokens.max(options.max_len),
            precision: options.precision,
            ..RunSettings::default()
        };
        let open = OpenOptions { settings, ..OpenOptions::default() };
        let assistant = Arc::new(FaqAssistant::open(dir, &open, &options.device)?);
        let answers = Arc::new(Answers(Arc::clone(&assistant)));
        let embeddings = Arc::new(Embeddings(Arc::clone(&assistant)));
        Ok(Self {
            answers: Batcher::start(&format!("answer-{name}"), answers, options.batch, Arc::clone(metrics))?,
            embeddings: Batcher::start(&format!("embed-{name}"), embeddings, options.batch, Arc::clone(metrics))?,
            assistant,
        })
    }

    /// What counts the tokens of a request's texts.
    pub fn costs(&self) -> Arc<dyn Costs> {
        Arc::new(FaqCosts(Arc::clone(&self.assistant)))
    }

    /// The index's summary for `/v1/models`.
    pub fn describe(&self, name: &str, default: bool) -> serde_json::Value {
        let index = self.assistant.index();
        serde_json::json!({
            "name": name, "entries": index.entries.len(), "keys": index.keys, "dim": index.dim,
            "threshold": index.threshold, "embedding_model": index.model.identity, "default": default,
        })
    }
}
