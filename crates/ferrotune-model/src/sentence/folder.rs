//! The files of a sentence-transformers folder beside the BERT checkpoint:
//! `modules.json` (Transformer, Pooling, optional Normalize),
//! `1_Pooling/config.json`, `sentence_bert_config.json` and
//! `config_sentence_transformers.json`.

use std::path::Path;

use serde_json::{json, Value};

use super::{PoolingMode, SentencePooling};
use crate::ModelError;

const TRANSFORMER: &str = "sentence_transformers.models.Transformer";
const POOLING: &str = "sentence_transformers.models.Pooling";
const NORMALIZE: &str = "sentence_transformers.models.Normalize";
/// Keys of `1_Pooling/config.json` for poolings ferrotune does not run.
const OTHER_MODES: [&str; 2] = ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"];

/// What a sentence-transformers folder says about pooling and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceFolder {
    /// Pooling and normalisation of the `Pooling` and `Normalize` modules.
    pub pooling: SentencePooling,
    /// `max_seq_length` of `sentence_bert_config.json`, when given.
    pub max_seq_length: Option<usize>,
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config { path: path.to_path_buf(), message: e.to_string() })
}

/// Reads the pooling of `dir` when it is a sentence-transformers folder
/// (has `modules.json`); `None` for a plain BERT folder. Modules other than
/// Transformer (at the folder's root), one Pooling and Normalize are refused.
pub fn read_sentence_folder(dir: &Path) -> Result<Option<SentenceFolder>, ModelError> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(None);
    }
    let config_error = |path: &Path, message: String| ModelError::Config { path: path.to_path_buf(), message };
    let modules = read_json(&modules_path)?;
    let modules = modules.as_array().ok_or_else(|| config_error(&modules_path, "expected a list of modules".into()))?;
    let (mut pooling_dir, mut normalize) = (None, false);
    for (i, module) in modules.iter().enumerate() {
        let kind = module.get("type").and_then(Value::as_str).unwrap_or_default();
        let path = module.get("path").and_then(Value::as_str).unwrap_or_default();
        match kind {
            TRANSFORMER if path.is_empty() => {}
            TRANSFORMER => {
                let message =
                    format!("module {i}: the Transformer must be at the folder's root (path \"\"), found '{path}'");
                return Err(config_error(&modules_path, message));
            }
            POOLING if pooling_dir.is_none() => pooling_dir = Some(dir.join(path)),
            NORMALIZE => normalize = true,
            other => {
                let message = format!("module {i}: unsupported module '{other}' (Transformer, Pooling, Normalize)");
                return Err(config_error(&modules_path, message));
            }
        }
    }
    let pooling_dir = pooling_dir.ok_or_else(|| config_error(&modules_path, "no Pooling module".into()))?;
    let pooling_path = pooling_dir.join("config.json");
    let config = read_json(&pooling_path)?;
    let on = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
    if let Some(key) = OTHER_MODES.iter().find(|k| on(k)) {
        return Err(config_error(&pooling_path, format!("{key} is not supported (cls, mean, max, mean_sqrt_len)")));
    }
    let modes: Vec<PoolingMode> = PoolingMode::ALL.into_iter().filter(|m| on(m.config_key())).collect();
    let mode = match modes[..] {
        [mode] => mode,
        _ => {
            let message = format!("expected exactly one pooling_mode_* key set to true, found {}", modes.len());
            return Err(config_error(&pooling_path, message));
        }
    };
    let bert_config = dir.join("sentence_bert_config.json");
    let max_seq_length = if bert_config.is_file() {
        read_json(&bert_config)?.get("max_seq_length").and_then(Value::as_u64).map(|n| n as usize)
    } else {
        None
    };
    Ok(Some(SentenceFolder { pooling: SentencePooling { mode, normalize }, max_seq_length }))
}

/// Writes the sentence-transformers files of a model with `pooling`, an
/// embedding of `dim` coordinates and `max_seq_length`, each atomically.
pub(crate) fn write_sentence_folder(
    dir: &Path,
    pooling: SentencePooling,
    dim: usize,
    max_seq_length: usize,
) -> Result<(), ModelError> {
    let write = |path: &Path, value: &Value| {
        let parent = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        let text = serde_json::to_string_pretty(value).expect("JSON value serialises");
        ferrotune_data::atomic::write_bytes_atomic(path, text.as_bytes()).map_err(|e| ModelError::io(path, e))
    };
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING}),
    ];
    if pooling.normalize {
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": NORMALIZE}));
        let normalize_dir = dir.join("2_Normalize");
        std::fs::create_dir_all(&normalize_dir).map_err(|e| ModelError::io(&normalize_dir, e))?;
    }
    write(&dir.join("modules.json"), &Value::Array(modules))?;
    let mut config = serde_json::Map::new();
    config.insert("word_embedding_dimension".into(), dim.into());
    for mode in PoolingMode::ALL {
        config.insert(mode.config_key().into(), (mode == pooling.mode).into());
    }
    for key in OTHER_MODES {
        config.insert(key.into(), false.into());
    }
    config.insert("include_prompt".into(), true.into());
    write(&dir.join("1_Pooling").join("config.json"), &Value::Object(config))?;
    write(&dir.join("sentence_bert_config.json"), &json!({"max_seq_length": max_seq_length, "do_lower_case": false}))?;
    let about = json!({
        "__version__": {"ferrotune": env!("CARGO_PKG_VERSION")},
        "prompts": {},
        "default_prompt_name": null,
        "similarity_fn_name": "cosine",
    });
    write(&dir.join("config_sentence_transformers.json"), &about)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_folders_read_back_and_bad_ones_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_sentence_folder(dir.path()).unwrap(), None, "a plain BERT folder");
        for mode in PoolingMode::ALL {
            for normalize in [false, true] {
                let pooling = SentencePooling { mode, normalize };
                let sub = dir.path().join(format!("{mode}{normalize}"));
                write_sentence_folder(&sub, pooling, 8, 100).unwrap();
                let read = read_sentence_folder(&sub).unwrap().unwrap();
                assert_eq!(read, SentenceFolder { pooling, max_seq_length: Some(100) });
            }
        }
        let sub = dir.path().join("meanfalse");
        let pooling_path = sub.join("1_Pooling/config.json");
        std::fs::write(&pooling_path, r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#)
            .unwrap();
        let e = read_sentence_folder(&sub).unwrap_err().to_string();
        assert!(e.starts_with(&pooling_path.display().to_string()) && e.contains("exactly one"), "{e}");
        let modules = sub.join("modules.json");
        std::fs::write(&modules, r#"[{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]"#).unwrap();
        let e = read_sentence_folder(&sub).unwrap_err().to_string();
        assert!(e.contains("modules.json: module 0: unsupported module 'sentence_transformers.models.Dense'"), "{e}");
    }
}
