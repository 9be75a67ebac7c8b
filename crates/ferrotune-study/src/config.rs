//! The study file (`search.toml`): budget, seed, sampler, pruner, the fixed
//! training options and the search space.

use std::path::{Path, PathBuf};

use ferrotune_train::TrainOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::space::{Param, SearchSpace};
use crate::StudyError;

/// Which sampler proposes each trial's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Independent uniform draws.
    Random,
    /// The tree-structured Parzen estimator, each option on its own
    /// (Optuna's `TPESampler` with its defaults).
    Tpe {
        /// Trials drawn at random before TPE starts.
        #[serde(default = "ten")]
        startup_trials: usize,
        /// Candidates drawn from the good trials' density; the one with the
        /// best ratio to the other trials' density is tried.
        #[serde(default = "twenty_four")]
        candidates: usize,
    },
}

/// Which pruner stops trials early, on their per-epoch dev score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PrunerConfig {
    /// Every trial runs all its epochs.
    None,
    /// Stops a trial whose best score so far is below the median of the
    /// completed trials' scores at the same epoch (Optuna's `MedianPruner`).
    Median {
        /// Completed trials needed before pruning starts.
        #[serde(default = "five")]
        startup_trials: usize,
        /// Epochs of each trial never pruned.
        #[serde(default)]
        warmup_epochs: usize,
    },
    /// Asynchronous successive halving (Optuna's `SuccessiveHalvingPruner`):
    /// at epochs `min_epochs * reduction_factor^(rate + k)`, a trial goes on
    /// only when its score is in the best `1 / reduction_factor` of the
    /// scores every trial had there.
    Asha {
        /// The first rung's epoch.
        #[serde(default = "one")]
        min_epochs: usize,
        /// The rungs' growth and the share promoted (its inverse).
        #[serde(default = "three")]
        reduction_factor: usize,
        /// Rungs skipped at the start.
        #[serde(default)]
        min_early_stopping_rate: u32,
    },
}

const fn one() -> usize {
    1
}
const fn three() -> usize {
    3
}
const fn five() -> usize {
    5
}
const fn ten() -> usize {
    10
}
const fn twenty_four() -> usize {
    24
}

/// A study as its file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyConfig {
    /// The number of trials.
    pub trials: usize,
    /// The sampler's seed: the same seed gives the same trials.
    pub seed: u64,
    /// The sampler.
    pub sampler: SamplerConfig,
    /// The pruner.
    pub pruner: PrunerConfig,
    /// The options every trial shares, as `ferrotune train --config` keys.
    pub train: toml::Table,
    /// The options each trial draws.
    pub space: SearchSpace,
    /// The study's folder, if the file names one.
    pub output: Option<PathBuf>,
}

impl StudyConfig {
    /// Reads a study file.
    pub fn read(path: &Path) -> Result<Self, StudyError> {
        let text = std::fs::read_to_string(path).map_err(|e| StudyError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses a study file's text (`path` names it in errors). Every key is
    /// checked: each space entry must name a training option, have a
    /// non-empty range and values the option accepts.
    pub fn parse(text: &str, path: &Path) -> Result<Self, StudyError> {
        let file: toml::Table =
            toml::from_str(text).map_err(|e| StudyError::Syntax { path: path.into(), message: e.to_string() })?;
        let bad = |key: &str, message: String| StudyError::Config { path: path.into(), key: key.into(), message };
        let mut config = Self {
            trials: 0,
            seed: 0,
            sampler: SamplerConfig::Tpe { startup_trials: ten(), candidates: twenty_four() },
            pruner: PrunerConfig::Median { startup_trials: five(), warmup_epochs: 0 },
            train: toml::Table::new(),
            space: SearchSpace::new(),
            output: None,
        };
        let mut trials = None;
        for (key, value) in &file {
            let json = serde_json::to_value(value).map_err(|e| bad(key, e.to_string()))?;
            let number = |v: &Value| v.as_u64().ok_or_else(|| bad(key, format!("expected a whole number, got {v}")));
            match key.as_str() {
                "trials" => trials = Some(number(&json)? as usize),
                "seed" => config.seed = number(&json)?,
                "sampler" => config.sampler = tagged(json).map_err(|m| bad(key, m))?,
                "pruner" => config.pruner = tagged(json).map_err(|m| bad(key, m))?,
                "output" => {
                    let text = json.as_str().ok_or_else(|| bad(key, "expected a path".into()))?;
                    config.output = Some(text.into());
                }
                "train" => {
                    config.train = value.as_table().ok_or_else(|| bad(key, "expected a table".into()))?.clone();
                }
                "space" => {
                    let table = value.as_table().ok_or_else(|| bad(key, "expected a table".into()))?;
                    for (name, entry) in table {
                        let key = format!("space.{name}");
                        let entry = serde_json::to_value(entry).map_err(|e| bad(&key, e.to_string()))?;
                        let param: Param = serde_json::from_value(entry).map_err(|e| bad(&key, e.to_string()))?;
                        config.space.insert(name.clone(), param);
                    }
                }
                _ => {
                    let keys = "trials, seed, sampler, pruner, output, train, space";
                    return Err(bad(key, format!("unknown key (the keys: {keys})")));
                }
            }
        }
        config.trials = trials.ok_or_else(|| bad("trials", "missing: how many trials to run".into()))?;
        if config.trials == 0 {
            return Err(bad("trials", "at least 1".into()));
        }
        if config.space.is_empty() {
            return Err(bad("space", "no options to search: add [space] entries".into()));
        }
        match config.pruner {
            PrunerConfig::Asha { min_epochs: 0, .. } => return Err(bad("pruner.min_epochs", "at least 1".into())),
            PrunerConfig::Asha { reduction_factor: 0 | 1, .. } => {
                return Err(bad("pruner.reduction_factor", "at least 2".into()))
            }
            _ => {}
        }
        if let SamplerConfig::Tpe { candidates: 0, .. } = config.sampler {
            return Err(bad("sampler.candidates", "at least 1".into()));
        }
        config.check_options().map_err(|(key, message)| bad(&key, message))?;
        Ok(config)
    }

    /// The training options of a trial: the defaults, the fixed options,
    /// then the trial's own.
    pub fn trial_options(&self, params: &Map<String, Value>) -> Result<TrainOptions, String> {
        let mut options = option_fields(&TrainOptions::default());
        for (key, value) in &self.train {
            if options.contains_key(key) {
                options.insert(key.clone(), serde_json::to_value(value).map_err(|e| e.to_string())?);
            }
        }
        for (key, value) in params {
            options.insert(key.clone(), value.clone());
        }
        let options: TrainOptions = serde_json::from_value(Value::Object(options)).map_err(|e| e.to_string())?;
        options.validate().map_err(|e| e.to_string())?;
        Ok(options)
    }

    /// Checks the fixed options, then every space entry: a training option,
    /// not fixed too, a sound range whose ends (or values) the option takes.
    fn check_options(&self) -> Result<(), (String, String)> {
        self.trial_options(&Map::new()).map_err(|m| ("train".to_string(), m))?;
        let known = option_fields(&TrainOptions::default());
        for (name, param) in &self.space {
            let key = format!("space.{name}");
            if !known.contains_key(name) {
                let names = known.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err((key, format!("not a training option (the options: {names})")));
            }
            if self.train.contains_key(name) {
                return Err((key, format!("also fixed in [train] (train.{name}): keep one")));
            }
            if let Some(problem) = param.problem() {
                return Err((key, problem));
            }
            for value in param.extremes() {
                let params = Map::from_iter([(name.clone(), value.clone())]);
                self.trial_options(&params).map_err(|m| (key.clone(), format!("{value}: {m}")))?;
            }
        }
        Ok(())
    }
}

/// The fields of `TrainOptions`, by name.
fn option_fields(options: &TrainOptions) -> Map<String, Value> {
    match serde_json::to_value(options) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("TrainOptions serialises to an object"),
    }
}

/// A sampler or pruner given as a name (`"tpe"`) or a table with `type`.
fn tagged<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, String> {
    let value = match value {
        Value::String(name) => serde_json::json!({ "type": name }),
        other => other,
    };
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        trials = 16
        seed = 7
        sampler = "tpe"
        pruner = { type = "asha", reduction_factor = 3 }
        [train]
        model = "m"
        epochs = 4
        [space]
        lr = { type = "float", low = 1e-5, high = 3e-4, log = true }
        batch_size = { type = "categorical", values = [8, 16, 32] }
        warmup_ratio = { type = "float", low = 0.0, high = 0.2 }
        weight_decay = { type = "float", low = 0.0, high = 0.1 }
    "#;

    fn error(text: &str) -> String {
        StudyConfig::parse(text, Path::new("search.toml")).unwrap_err().to_string()
    }

    #[test]
    fn a_full_study_file_parses() {
        let config = StudyConfig::parse(GOOD, Path::new("search.toml")).unwrap();
        assert_eq!((config.trials, config.seed), (16, 7));
        assert_eq!(config.sampler, SamplerConfig::Tpe { startup_trials: 10, candidates: 24 });
        assert_eq!(
            config.pruner,
            PrunerConfig::Asha { min_epochs: 1, reduction_factor: 3, min_early_stopping_rate: 0 }
        );
        assert_eq!(config.space.len(), 4);
        let params = Map::from_iter([("batch_size".into(), Value::from(32)), ("lr".into(), Value::from(1e-4))]);
        let options = config.trial_options(&params).unwrap();
        assert_eq!((options.epochs, options.batch_size, options.lr), (4, 32, 1e-4));
    }

    #[test]
    fn lora_options_are_searchable() {
        let text = r#"
            trials = 8
            [train]
            peft = "lora"
            [space]
            lora_r = { type = "int", low = 4, high = 32, log = true }
            lora_alpha = { type = "categorical", values = [8.0, 16.0, 32.0] }
            lora_dropout = { type = "float", low = 0.0, high = 0.2 }
            lora_targets = { type = "categorical", values = ["query,value", "query,key,value,attention.output.dense"] }
        "#;
        let config = StudyConfig::parse(text, Path::new("lora.toml")).unwrap();
        let params = Map::from_iter([
            ("lora_r".to_string(), Value::from(16)),
            ("lora_alpha".to_string(), Value::from(32.0)),
            ("lora_dropout".to_string(), Value::from(0.05)),
            ("lora_targets".to_string(), Value::from("query,key,value,attention.output.dense")),
        ]);
        let options = config.trial_options(&params).unwrap();
        assert_eq!((options.peft, options.lora_r, options.lora_alpha), (ferrotune_train::Peft::Lora, 16, 32.0));
        assert_eq!(options.lora_targets, "query,key,value,attention.output.dense");
        let bad = text.replace("\"query,value\",", "\"query,value\", \"pooler\",");
        let message = StudyConfig::parse(&bad, Path::new("lora.toml")).unwrap_err().to_string();
        assert!(message.starts_with("lora.toml: space.lora_targets: \"pooler\""), "{message}");
    }

    #[test]
    fn bad_entries_are_named_with_file_and_key() {
        let with = |entry: &str| GOOD.replace("weight_decay = { type = \"float\", low = 0.0, high = 0.1 }", entry);
        let cases = [
            (
                with("learning_rate = { type = \"float\", low = 0.0, high = 0.1 }"),
                "space.learning_rate: not a training option",
            ),
            (with("weight_decay = { type = \"float\", low = 0.2, high = 0.1 }"), "space.weight_decay: empty range"),
            (
                with("weight_decay = { type = \"float\", low = 0.0, high = 0.1, log = true }"),
                "space.weight_decay: a log range",
            ),
            (with("max_len = { type = \"categorical\", values = [] }"), "space.max_len: a categorical needs"),
            (
                with("weight_decay = { type = \"uniform\", low = 0.0, high = 0.1 }"),
                "space.weight_decay: unknown variant",
            ),
            (
                GOOD.replace(
                    "{ type = \"categorical\", values = [8, 16, 32] }",
                    "{ type = \"float\", low = 0.5, high = 8.0 }",
                ),
                "space.batch_size",
            ),
            (with("eval_batch_size = { type = \"int\", low = 0, high = 3 }"), "space.eval_batch_size: 0: "),
            (GOOD.replace("trials = 16", ""), "search.toml: trials: missing"),
            (GOOD.replace("seed = 7", "seed = 7\nsamples = 3"), "search.toml: samples: unknown key"),
            (GOOD.replace("model = \"m\"", "model = \"m\"\nlr = 1e-4"), "space.lr: also fixed"),
            (GOOD.replace("\"tpe\"", "\"grid\""), "search.toml: sampler: unknown variant"),
        ];
        for (text, expected) in cases {
            let message = error(&text);
            assert!(message.starts_with("search.toml: ") && message.contains(expected), "{message}");
        }
    }
}
