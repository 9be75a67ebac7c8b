//! One trial: the options it tried, its dev score per epoch, how it ended.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Started, not ended (a resumed study runs it again).
    Running,
    /// Ran all its epochs (or stopped early by its own patience).
    Complete,
    /// Stopped by the pruner.
    Pruned,
    /// Its training failed.
    Failed,
}

impl TrialState {
    /// Its name in tables and the journal.
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }
}

/// One trial of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its number (from 0, in the order started).
    pub number: usize,
    /// The options drawn, by name.
    pub params: Map<String, Value>,
    /// Where it stands.
    pub state: TrialState,
    /// The dev score after each epoch: `(epoch from 1, score)`, in order.
    pub scores: Vec<(usize, f64)>,
    /// The epochs it would run unpruned.
    pub max_epochs: usize,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Trial {
    /// The score of a complete trial: its best epoch's (the model kept).
    pub fn value(&self) -> Option<f64> {
        (self.state == TrialState::Complete).then(|| self.best_score()).flatten()
    }

    /// Its options as `name=value` pairs (floats to four significant digits).
    pub fn options_text(&self) -> String {
        self.params.iter().map(|(k, v)| format!("{k}={}", crate::page::short(v))).collect::<Vec<_>>().join(" ")
    }

    /// The score tables show: a complete trial's best, another's last.
    pub fn shown_score(&self) -> Option<f64> {
        match self.state {
            TrialState::Complete => self.value(),
            _ => self.last().map(|(_, s)| s),
        }
    }

    /// The best dev score of any epoch so far.
    pub fn best_score(&self) -> Option<f64> {
        self.scores.iter().map(|&(_, s)| s).reduce(f64::max)
    }

    /// The dev score after `epoch`, if it got there.
    pub fn score_at(&self, epoch: usize) -> Option<f64> {
        self.scores.iter().find(|&&(e, _)| e == epoch).map(|&(_, s)| s)
    }

    /// The last epoch scored and its score.
    pub fn last(&self) -> Option<(usize, f64)> {
        self.scores.last().copied()
    }

    /// Complete or pruned: a result the sampler learns from.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, TrialState::Complete | TrialState::Pruned) && !self.scores.is_empty()
    }
}
