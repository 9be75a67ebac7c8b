//! The study journal: JSON lines, the study's settings first, then one line
//! per trial; rewritten whole and atomically after every change (temp file,
//! fsync, rename), so a kill leaves the last state or the one before.

use std::path::Path;

use serde_json::{json, Value};

use crate::{StudyConfig, StudyError, Trial};

/// The settings that make a study what it is (the trial budget may change
/// between runs; the output folder is where it is, not what it is).
pub(crate) fn header(config: &StudyConfig) -> Value {
    json!({
        "seed": config.seed,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "train": config.train,
        "space": config.space,
        "trials": config.trials,
    })
}

/// Writes the journal.
pub(crate) fn write(path: &Path, config: &StudyConfig, trials: &[Trial]) -> Result<(), StudyError> {
    let mut text = header(config).to_string();
    text.push('\n');
    for trial in trials {
        text.push_str(&serde_json::to_string(trial).expect("trials serialise"));
        text.push('\n');
    }
    ferrotune_data::atomic::write_bytes_atomic(path, text.as_bytes()).map_err(|e| StudyError::io(path, e))
}

/// Reads a journal: its settings and its trials (numbered 0, 1, ... in order).
pub(crate) fn read(path: &Path) -> Result<(Value, Vec<Trial>), StudyError> {
    let text = std::fs::read_to_string(path).map_err(|e| StudyError::io(path, e))?;
    let bad = |line: usize, message: String| StudyError::Journal { path: path.into(), line, message };
    let mut lines = text.lines().enumerate();
    let (_, first) = lines.next().ok_or_else(|| bad(1, "empty: not a study journal".into()))?;
    let header: Value = serde_json::from_str(first).map_err(|e| bad(1, e.to_string()))?;
    if !header.is_object() || header.get("space").is_none() {
        return Err(bad(1, "not a study journal (no \"space\")".into()));
    }
    let mut trials = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let trial: Trial = serde_json::from_str(line).map_err(|e| bad(i + 1, e.to_string()))?;
        if trial.number != trials.len() {
            return Err(bad(i + 1, format!("trial {} where trial {} was expected", trial.number, trials.len())));
        }
        trials.push(trial);
    }
    Ok((header, trials))
}

/// The first setting (dotted key) where a journal's header and a study
/// file differ: the key, the journal's value, the file's value.
pub(crate) fn difference(journal: &Value, config: &StudyConfig) -> Option<(String, String, String)> {
    fn walk(key: &str, a: &Value, b: &Value) -> Option<(String, String, String)> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                    walk(&sub, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null))
                })
            }
            _ if a == b => None,
            _ => {
                let show = |v: &Value| if v.is_null() { "absent".to_string() } else { v.to_string() };
                Some((key.to_string(), show(a), show(b)))
            }
        }
    }
    let mut journal = journal.clone();
    let mut config = header(config);
    for settings in [&mut journal, &mut config] {
        if let Some(map) = settings.as_object_mut() {
            map.remove("trials");
        }
    }
    walk("", &journal, &config)
}
