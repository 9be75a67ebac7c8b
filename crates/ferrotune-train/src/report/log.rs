//! Reading a run's output folder back.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::TrainError;

/// One optimizer step of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StepPoint {
    /// Optimizer step (from 1).
    pub step: u64,
    /// Epoch (from 1).
    pub epoch: u64,
    /// The batch's loss.
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
    /// Model inputs per second so far in the epoch.
    #[serde(rename = "windows_per_s")]
    pub rate: f64,
}

/// One epoch of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EpochPoint {
    /// Epoch (from 1).
    pub epoch: u64,
    /// The optimizer step it ended at.
    pub step: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Seconds of training.
    pub seconds: f64,
    /// Model inputs per second.
    #[serde(rename = "windows_per_s")]
    pub rate: f64,
    /// The epoch kept so far.
    pub best_epoch: u64,
    /// The dev score that selects the model (logs before it was written:
    /// read from `dev`, see [`selection_score`]).
    #[serde(default)]
    pub dev_score: Option<f64>,
    /// The dev report, as logged.
    #[serde(default)]
    pub dev: Value,
}

/// A training run read from its output folder.
#[derive(Debug, Clone)]
pub struct RunLog {
    /// The folder.
    pub dir: PathBuf,
    /// Its name on the page (the folder's name).
    pub name: String,
    /// Every step, in order.
    pub steps: Vec<StepPoint>,
    /// Every epoch, in order.
    pub epochs: Vec<EpochPoint>,
    /// `run.json` (model, data files, options, data sizes); without it the
    /// checkpoint's options.
    pub run: Value,
}

impl RunLog {
    /// Reads `metrics.jsonl` (each line checked, naming the file and line)
    /// and `run.json` or `checkpoint/state.json` of a run's output folder.
    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let (mut steps, mut epochs) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |message: String| TrainError::RunLog { path: path.clone(), line: i + 1, message };
            let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            match value["type"].as_str() {
                Some("step") => steps.push(serde_json::from_value(value).map_err(|e| bad(e.to_string()))?),
                Some("epoch") => {
                    let mut epoch: EpochPoint = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
                    epoch.dev_score = epoch.dev_score.or_else(|| selection_score(&epoch.dev));
                    epochs.push(epoch);
                }
                _ => return Err(bad("not a step or epoch line (\"type\")".into())),
            }
        }
        let run = read_json(&dir.join(crate::trainer::RUN_FILE))?
            .or(read_json(&dir.join("checkpoint").join("state.json"))?)
            .unwrap_or(Value::Null);
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Self { dir: dir.to_path_buf(), name, steps, epochs, run })
    }

    /// The epoch kept (the last line's `best_epoch`), if any epoch ended.
    pub fn kept(&self) -> Option<&EpochPoint> {
        let best = self.epochs.last()?.best_epoch;
        self.epochs.iter().find(|e| e.epoch == best)
    }

    /// The run's options, if known.
    pub fn options(&self) -> Option<&serde_json::Map<String, Value>> {
        self.run["options"].as_object()
    }
}

/// The score that selects the model, from a logged dev report: micro F1
/// (entities, multilabel), macro F1 (classes), minus the MSE (regression).
fn selection_score(dev: &Value) -> Option<f64> {
    dev["micro"]["f1"].as_f64().or_else(|| dev["macro"]["f1"].as_f64()).or_else(|| dev["mse"].as_f64().map(|m| -m))
}

/// A JSON file, `None` if there is none.
fn read_json(path: &Path) -> Result<Option<Value>, TrainError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| TrainError::RunLog {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(path, e)),
    }
}
