//! Building a FAQ index: every entry embedded (one vector per key), the
//! embedding model's identity, the intents the FAQ covers, and the
//! hand-over threshold calibrated on labelled dev questions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_data::{read_faq, read_faq_questions, DataFormat, TextInput};
use ferrotune_infer::{Embedder, FineTuned, Record, RunSettings};

use crate::assistant::{intent_label, Evaluation};
use crate::index::row_id;
use crate::{AssistantError, Entry, FaqAssistant, FaqIndex, IntentGate, Keys, ModelRef};
use ferrotune_search::{AnnSettings, SearchIndex, VectorIndex};

/// What to build an index from.
#[derive(Debug)]
pub struct BuildOptions {
    /// The sentence-embedding model folder.
    pub model: PathBuf,
    /// The FAQ file (`id`, `question`, `answer`, optionally `intent`).
    pub faq: PathBuf,
    /// The FAQ file's format (`None`: its extension's).
    pub format: Option<DataFormat>,
    /// What is embedded of each entry.
    pub keys: Keys,
    /// Labelled user questions to calibrate the hand-over threshold on.
    pub dev: Option<PathBuf>,
    /// The share of answered dev questions that must be right at the threshold.
    pub target_precision: f64,
    /// A fine-tuned intent classifier: questions of an intent the FAQ does
    /// not cover (its `intent` column, or else the intents the classifier
    /// gives its questions) are handed over.
    pub intent_model: Option<PathBuf>,
    /// How the models run.
    pub settings: RunSettings,
    /// Entries given besides the best one.
    pub alternatives: usize,
    /// Search through an HNSW graph with these settings instead of scoring
    /// every entry (for large FAQs).
    pub ann: Option<AnnSettings>,
    /// An index built before (usually the one being replaced): a key whose
    /// text is in it, embedded by the same model (identity) with the same
    /// `max_len`, keeps its vector instead of being embedded again.
    pub previous: Option<FaqIndex>,
}

/// A built index, ready to answer, and its dev report.
pub struct Built {
    /// The assistant (save it with `assistant.index().save(dir)`).
    pub assistant: FaqAssistant,
    /// The dev questions answered at the calibrated threshold.
    pub dev: Option<Evaluation>,
    /// Keys embedded by this build.
    pub embedded: usize,
    /// Keys whose vectors came from the previous index.
    pub reused: usize,
}

/// The folder as an absolute path, so that the index finds it from anywhere.
fn absolute(dir: &Path) -> PathBuf {
    let dir = ferrotune_model::model_folder(dir);
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Builds an index in memory (see [`BuildOptions`]).
pub fn build(options: &BuildOptions, device: &Device) -> Result<Built, AssistantError> {
    if !(options.target_precision > 0.0 && options.target_precision <= 1.0) {
        return Err(AssistantError::InvalidOption { field: "target_precision", expected: "in (0, 1]" });
    }
    let entries: Vec<Entry> = read_faq(&options.faq, options.format)?.into_iter().map(Entry::from).collect();
    let embedder = Embedder::load(&options.model, options.settings, device)?;
    let texts: Vec<String> = entries.iter().flat_map(|e| options.keys.texts(e)).collect();
    let keys = options.keys.per_entry();
    let ids: Vec<String> = (0..texts.len()).map(|row| row_id(row / keys, row % keys)).collect();
    let identity = embedder.identity()?.to_string();
    let max_len = embedder.settings().max_len;
    let mut known = match &options.previous {
        Some(index) if index.model.identity == identity && index.model.max_len == Some(max_len) => key_vectors(index),
        _ => HashMap::new(),
    };
    let reused = texts.iter().filter(|t| known.contains_key(*t)).count();
    let mut missing: Vec<String> = texts.iter().filter(|t| !known.contains_key(*t)).cloned().collect();
    missing.sort();
    missing.dedup();
    let embedded = embedder.embed(&missing)?;
    known.extend(missing.into_iter().zip(embedded.rows().map(<[f32]>::to_vec)));
    let data: Vec<f32> = texts.iter().flat_map(|t| known[t].iter().copied()).collect();
    let mut vectors = VectorIndex::new(embedder.dim())?;
    vectors.add_many(&ids, &data)?;
    let (intent_model, intent) = match &options.intent_model {
        Some(dir) => {
            let model = FineTuned::load(dir, options.settings, device)?;
            let covered = covered_intents(&entries, &model)?;
            (Some(model), Some(IntentGate { model: absolute(dir), covered }))
        }
        None => (None, None),
    };
    let index = FaqIndex {
        model: ModelRef { path: absolute(&options.model), identity, max_len: Some(max_len) },
        keys: options.keys,
        dim: embedder.dim(),
        entries,
        vectors: SearchIndex::new(vectors, options.ann)?,
        threshold: None,
        calibration: None,
        intent,
    };
    let mut assistant = FaqAssistant::new(index, embedder, intent_model, options.alternatives);
    let embedded = texts.len() - reused;
    let Some(dev) = &options.dev else { return Ok(Built { assistant, dev: None, embedded, reused }) };
    let questions = read_faq_questions(dev, None)?;
    let scored = assistant.evaluate(&questions, dev)?;
    let (scores, correct): (Vec<f32>, Vec<bool>) = scored.judged.iter().map(|j| (j.score, j.correct)).unzip();
    let calibration = ferrotune_eval::calibrate(&scores, &correct, options.target_precision);
    assistant.set_threshold(calibration);
    let dev = assistant.evaluate(&questions, dev)?;
    Ok(Built { assistant, dev: Some(dev), embedded, reused })
}

/// The vector of every key text of `index`.
fn key_vectors(index: &FaqIndex) -> HashMap<String, Vec<f32>> {
    let mut known = HashMap::new();
    for (e, entry) in index.entries.iter().enumerate() {
        for (k, text) in index.keys.texts(entry).into_iter().enumerate() {
            if let Some(vector) = index.vectors.exact().get(&row_id(e, k)) {
                known.insert(text, vector.to_vec());
            }
        }
    }
    known
}

/// The intents of the FAQ's `intent` column, or else those the intent model
/// gives the entries' questions; sorted, each once.
fn covered_intents(entries: &[Entry], model: &FineTuned) -> Result<Vec<String>, AssistantError> {
    let mut covered: Vec<String> = entries.iter().filter_map(|e| e.intent.clone()).collect();
    if covered.is_empty() {
        let inputs: Vec<TextInput> = entries.iter().map(|e| TextInput::Text(e.question.clone())).collect();
        for record in model.run(&inputs)?.records {
            if let Record::Classify(record) = record {
                covered.push(intent_label(&record));
            }
        }
    }
    covered.sort();
    covered.dedup();
    Ok(covered)
}
