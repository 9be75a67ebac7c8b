//! Where a training run keeps its model: `ferrotune train --output DIR`
//! saves the best model as the folder `DIR/model` (swapped in whole after
//! each better epoch), beside `metrics.jsonl` and `checkpoint/`. Every
//! command that loads a model accepts either `DIR` or `DIR/model`.

use std::path::{Path, PathBuf};

/// The subfolder of a training run's output that holds the saved model.
pub const TRAINED_MODEL: &str = "model";

/// The model folder `dir` names: `dir` itself when it holds a `config.json`,
/// else its [`TRAINED_MODEL`] subfolder when that holds one, else `dir`
/// (whose missing `config.json` the loader then reports).
pub fn model_folder(dir: &Path) -> PathBuf {
    let trained = dir.join(TRAINED_MODEL);
    if !dir.join("config.json").is_file() && trained.join("config.json").is_file() {
        trained
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_names_its_model() {
        let run = tempfile::tempdir().unwrap();
        assert_eq!(model_folder(run.path()), run.path(), "nothing saved yet: the folder itself");
        std::fs::create_dir(run.path().join(TRAINED_MODEL)).unwrap();
        std::fs::write(run.path().join(TRAINED_MODEL).join("config.json"), "{}").unwrap();
        assert_eq!(model_folder(run.path()), run.path().join(TRAINED_MODEL));
        let model = run.path().join(TRAINED_MODEL);
        assert_eq!(model_folder(&model), model, "the model folder itself");
    }
}
