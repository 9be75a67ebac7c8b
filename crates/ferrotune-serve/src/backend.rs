//! The models behind the server: loaded once at start from folders named on
//! the command line, each answering a batch of inputs with exactly the
//! records `ferrotune predict` writes.

use std::path::Path;

use candle_core::Device;
use ferrotune_data::Task;
use ferrotune_infer::{Prediction, PredictionInput, Tagger, TextClassifier};
use ferrotune_model::BertConfig;

use crate::ServeError;

/// One input text: a text for NER or classification, or a text pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A single text.
    Text(String),
    /// A text pair (sequence models only).
    Pair(String, String),
}

/// A loaded model.
pub enum Backend {
    /// A token classifier.
    Ner(Tagger),
    /// A sequence classifier (classify, multilabel or regression).
    Text(TextClassifier),
}

impl Backend {
    /// Loads a fine-tuned model folder of any task.
    pub fn load(dir: &Path, max_len: usize, batch_size: usize, device: &Device) -> Result<Self, ServeError> {
        Ok(match BertConfig::fine_tuned_task(dir)? {
            Task::Ner => Backend::Ner(Tagger::load(dir, max_len, batch_size, device)?),
            _ => Backend::Text(TextClassifier::load(dir, max_len, batch_size, device)?),
        })
    }

    /// The model's task.
    pub fn task(&self) -> Task {
        match self {
            Backend::Ner(_) => Task::Ner,
            Backend::Text(c) => c.model.task,
        }
    }

    /// The model's labels in id order.
    pub fn labels(&self) -> &[String] {
        match self {
            Backend::Ner(t) => &t.model.labels,
            Backend::Text(c) => &c.model.labels,
        }
    }

    /// The `predict` record of every input, in order.
    pub fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
        match self {
            Backend::Ner(tagger) => {
                let parsed: Vec<PredictionInput> = inputs
                    .iter()
                    .map(|i| match i {
                        Input::Text(t) => Ok(PredictionInput::from_text(t)),
                        Input::Pair(..) => Err(ServeError::Inference("NER models take single texts".into())),
                    })
                    .collect::<Result<_, _>>()?;
                let words: Vec<Vec<String>> = parsed.iter().map(|p| p.word_texts()).collect();
                let (_, predictions) = tagger.tag(&words)?;
                Ok(parsed
                    .iter()
                    .zip(&predictions)
                    .map(|(input, p)| to_json(&Prediction::new(input, p, &tagger.model.labels)))
                    .collect())
            }
            Backend::Text(classifier) => {
                let texts: Vec<(&str, Option<&str>)> = inputs
                    .iter()
                    .map(|i| match i {
                        Input::Text(t) => (t.as_str(), None),
                        Input::Pair(a, b) => (a.as_str(), Some(b.as_str())),
                    })
                    .collect();
                let scores = classifier.score(&texts)?;
                Ok(texts.iter().zip(&scores).map(|((a, b), s)| to_json(&classifier.record(a, *b, s))).collect())
            }
        }
    }
}

/// One answer, serialised once, exactly as `ferrotune predict` writes it.
pub type Record = Box<serde_json::value::RawValue>;

fn to_json(record: &impl serde::Serialize) -> Record {
    serde_json::value::to_raw_value(record).expect("records serialise")
}
