//! End-of-epoch checkpoints: parameters, optimizer moments and the run's
//! position, written to a fresh folder that then replaces the old one, so a
//! kill at any moment leaves one whole checkpoint behind.

use std::path::{Path, PathBuf};

use ferrotune_model::ParamStore;
use serde::{Deserialize, Serialize};

use crate::optimizer::AdamW;
use crate::{TrainError, TrainOptions};

/// Where a run stands at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// Best dev score so far (see `DevResult::score`), if any.
    pub best_score: Option<f64>,
    /// The epoch of the best dev F1 (0 if none).
    pub best_epoch: usize,
    /// Epochs since the last gain in the dev score.
    pub epochs_without_gain: usize,
    /// Whether early stopping has ended the run.
    pub stopped_early: bool,
    /// The options the run was started with.
    pub options: TrainOptions,
    /// The label set.
    pub labels: Vec<String>,
}

const PARAMS: &str = "params.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

fn dirs(output: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (output.join("checkpoint"), output.join("checkpoint.new"), output.join("checkpoint.old"))
}

/// Writes a checkpoint into `<output>/checkpoint`. The random state needs no
/// saving: each epoch's generator is derived from the seed and the epoch.
pub fn save(output: &Path, params: &ParamStore, optimizer: &AdamW, state: &RunState) -> Result<(), TrainError> {
    let (current, new, old) = dirs(output);
    let io = |p: &Path, e| TrainError::io(p, e);
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| io(&new, e))?;
    }
    std::fs::create_dir_all(&new).map_err(|e| io(&new, e))?;
    params.save_canonical(&new.join(PARAMS))?;
    optimizer.save(&new.join(OPTIMIZER))?;
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    ferrotune_data::atomic::write_bytes_atomic(&new.join(STATE), json.as_bytes()).map_err(|e| io(&new, e))?;
    // The new folder's entries are on disk before it takes the place of the
    // old one, and each rename is flushed.
    ferrotune_data::atomic::sync_dir(&new).map_err(|e| io(&new, e))?;
    if current.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        ferrotune_data::atomic::rename_durably(&current, &old).map_err(|e| io(&current, e))?;
    }
    ferrotune_data::atomic::rename_durably(&new, &current).map_err(|e| io(&new, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    Ok(())
}

/// The folder of the newest whole checkpoint under `output`, if any.
pub fn find(output: &Path) -> Option<PathBuf> {
    let (current, _, old) = dirs(output);
    [current, old].into_iter().find(|d| d.join(STATE).is_file())
}

/// Reads the run state of a checkpoint folder.
pub fn read_state(dir: &Path) -> Result<RunState, TrainError> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::CheckpointFile { path: path.clone(), message: e.to_string() })
}

/// Restores parameters and optimizer moments from a checkpoint folder.
pub fn restore(dir: &Path, params: &ParamStore, optimizer: &mut AdamW, state: &RunState) -> Result<(), TrainError> {
    params.restore(&dir.join(PARAMS))?;
    optimizer.load(&dir.join(OPTIMIZER), state.step)
}
