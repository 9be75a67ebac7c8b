//! A FAQ index with its embedding model (and intent model) loaded: answers
//! questions, and scores labelled ones.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_data::{Expected, FaqQuestion, TextInput};
use ferrotune_eval::Calibration;
use ferrotune_eval::{HandoverReport, JudgedAnswer};
use ferrotune_infer::{ClassifyRecord, Embedder, FineTuned, Record, RunSettings};

use crate::{Answer, AssistantError, FaqIndex, IntentGuess};

/// How an index is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The embedding model to query with; `None`: the one the index was
    /// built with. Its identity must be the index's.
    pub model: Option<PathBuf>,
    /// How the models run.
    pub settings: RunSettings,
    /// Entries given besides the best one.
    pub alternatives: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { model: None, settings: RunSettings::default(), alternatives: 3 }
    }
}

/// A FAQ index ready to answer.
pub struct FaqAssistant {
    index: FaqIndex,
    embedder: Embedder,
    intent: Option<FineTuned>,
    alternatives: usize,
}

/// A labelled question set answered and scored.
pub struct Evaluation {
    /// One answer per question, in order.
    pub answers: Vec<Answer>,
    /// Each answer judged against its label.
    pub judged: Vec<JudgedAnswer>,
    /// The hand-over report.
    pub report: HandoverReport,
}

/// The intent a classifier's record gives (its label as text).
pub(crate) fn intent_label(record: &ClassifyRecord) -> String {
    record.label.as_str().map_or_else(|| record.label.to_string(), str::to_string)
}

impl FaqAssistant {
    /// The assistant of an index in memory and the models it was built with.
    pub(crate) fn new(index: FaqIndex, embedder: Embedder, intent: Option<FineTuned>, alternatives: usize) -> Self {
        Self { index, embedder, intent, alternatives }
    }

    /// Opens the index folder `dir` (checking every file) and loads its
    /// embedding model (or `options.model`, which must be the same model)
    /// and its intent model.
    pub fn open(dir: &Path, options: &OpenOptions, device: &Device) -> Result<Self, AssistantError> {
        let index = FaqIndex::load(dir)?;
        let model = options.model.clone().unwrap_or_else(|| index.model.path.clone());
        let embedder = Embedder::load(&model, options.settings, device)?;
        let given = embedder.identity()?.to_string();
        if given != index.model.identity {
            return Err(AssistantError::ModelMismatch {
                index: dir.to_path_buf(),
                built_path: index.model.path.clone(),
                built: index.model.identity.clone(),
                model,
                given,
            });
        }
        let intent = match &index.intent {
            Some(gate) => Some(FineTuned::load(&gate.model, options.settings, device)?),
            None => None,
        };
        Ok(Self::new(index, embedder, intent, options.alternatives))
    }

    /// The index.
    pub fn index(&self) -> &FaqIndex {
        &self.index
    }

    /// The embedding model.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The answer to every question, in order. An empty question is an error.
    pub fn ask(&self, queries: &[String]) -> Result<Vec<Answer>, AssistantError> {
        if let Some(index) = queries.iter().position(|q| q.trim().is_empty()) {
            return Err(AssistantError::EmptyQuestion { index });
        }
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self.embedder.embed(queries)?;
        let mut answers = self.index.answers(queries, &embeddings.data, self.alternatives)?;
        if let (Some(model), Some(gate)) = (&self.intent, &self.index.intent) {
            let inputs: Vec<TextInput> = queries.iter().map(|q| TextInput::Text(q.clone())).collect();
            for (answer, record) in answers.iter_mut().zip(model.run(&inputs)?.records) {
                let Record::Classify(record) = record else { continue };
                let label = intent_label(&record);
                answer.handoff |= gate.covered.binary_search(&label).is_err();
                answer.intent = Some(IntentGuess { label, score: record.score });
            }
        }
        Ok(answers)
    }

    /// Answers labelled questions (read from `path`) and scores them: an
    /// answer is right when it is the expected entry, or has the expected
    /// answer text. A `faq_id` the index does not hold is an error naming
    /// the file and line.
    pub fn evaluate(&self, questions: &[FaqQuestion], path: &Path) -> Result<Evaluation, AssistantError> {
        for question in questions {
            if let Expected::Entry(id) = &question.expected {
                if !self.index.entries.iter().any(|e| &e.id == id) {
                    let (path, line, id) = (path.to_path_buf(), question.line, id.clone());
                    return Err(AssistantError::UnknownFaqId { path, line, id });
                }
            }
        }
        let queries: Vec<String> = questions.iter().map(|q| q.query.clone()).collect();
        let answers = self.ask(&queries)?;
        let judged: Vec<JudgedAnswer> = questions.iter().zip(&answers).map(|(q, a)| judge(q, a)).collect();
        let report = HandoverReport::compute(&judged);
        Ok(Evaluation { answers, judged, report })
    }

    /// Hands over answers scoring below the calibrated threshold from now on.
    pub(crate) fn set_threshold(&mut self, calibration: Calibration) {
        self.index.threshold = Some(calibration.threshold);
        self.index.calibration = Some(calibration);
    }
}

/// Whether `answer` is right for `question`, and whether it was handed over.
fn judge(question: &FaqQuestion, answer: &Answer) -> JudgedAnswer {
    let (in_scope, correct) = match &question.expected {
        Expected::Entry(id) => (true, &answer.faq_id == id),
        Expected::Answer(text) => (true, &answer.answer == text),
        Expected::OutOfScope => (false, false),
    };
    JudgedAnswer { score: answer.score, in_scope, correct, handoff: answer.handoff }
}
