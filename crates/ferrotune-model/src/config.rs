//! `config.json` of a BERT-family checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use ferrotune_data::{SequenceKind, Task};
use serde::Deserialize;

use crate::ModelError;

/// The activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (`"gelu"`).
    GeluErf,
    /// Tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// ReLU (`"relu"`).
    Relu,
}

/// How a sequence classifier turns the token states into one vector (the
/// token-state poolings themselves are [`crate::sentence::PoolingMode`];
/// sentence embeddings have no pooler layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// BERT's pooler: a dense layer and tanh over the `[CLS]` state (as
    /// `BertForSequenceClassification`; new when the checkpoint has none).
    #[default]
    Cls,
    /// The mean of the token states over the attention mask (no pooler;
    /// ferrotune only: `transformers` always uses the pooler).
    Mean,
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
        })
    }
}

/// The hyper-parameters of a BERT encoder, plus the label names of a
/// fine-tuned head when the checkpoint has one.
#[derive(Debug, Clone)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Inner size of the feed-forward block.
    pub intermediate_size: usize,
    /// Number of positions.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Dropout on hidden states.
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities.
    pub attention_probs_dropout_prob: f32,
    /// Dropout before the classifier (`classifier_dropout`, else hidden dropout).
    pub classifier_dropout: f32,
    /// Labels of an existing head, in id order (`id2label`), if any.
    pub labels: Option<Vec<String>>,
    /// The task of a fine-tuned head (from `architectures` and
    /// `problem_type`), if the checkpoint is one.
    pub task: Option<Task>,
    /// The pooling of a sequence head (`ferrotune_pooling`, default `cls`).
    pub pooling: Pooling,
    /// The whole file, kept so that saving preserves keys we do not use.
    pub raw: serde_json::Value,
    /// What was quantized, for a folder written by `ferrotune quantize`.
    pub quantization: Option<crate::quant::QuantizationConfig>,
    /// The LoRA adapters' settings when the weights carry adapters (set by
    /// whoever adds them, never read from `config.json`).
    pub lora: Option<crate::lora::LoraSettings>,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    attention_probs_dropout_prob: f32,
    classifier_dropout: Option<f32>,
    position_embedding_type: Option<String>,
    id2label: Option<BTreeMap<String, String>>,
    problem_type: Option<String>,
    ferrotune_pooling: Option<String>,
}

/// The keys that must be positive integers.
const SIZE_KEYS: [&str; 7] = [
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
];

fn default_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json(&text).map_err(|message| ModelError::Config { path: path.to_path_buf(), message })
    }

    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        let raw_value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        // Sizes first, by key: serde's own message would not name it.
        for key in SIZE_KEYS {
            match raw_value.get(key) {
                None => {}
                Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
                Some(v) => return Err(format!("{key} must be a positive integer, found {v}")),
            }
        }
        let raw: RawConfig = serde_json::from_value(raw_value.clone()).map_err(|e| e.to_string())?;
        let model_type = raw.model_type.as_deref().unwrap_or("bert");
        if model_type != "bert" {
            return Err(format!(
                "unsupported model_type '{model_type}': only BERT-family ('bert') checkpoints are supported"
            ));
        }
        if let Some(arch) = raw.architectures.iter().flatten().find(|a| !a.starts_with("Bert")) {
            return Err(format!("unsupported architecture '{arch}': expected a Bert* architecture"));
        }
        if let Some(p) = raw.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(format!("unsupported position_embedding_type '{p}': only 'absolute' is supported"));
        }
        let hidden_act = match raw.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(format!("unsupported hidden_act '{other}' (gelu, gelu_new, relu)")),
        };
        if raw.num_attention_heads == 0 || !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            ));
        }
        let dropouts = [
            ("hidden_dropout_prob", Some(raw.hidden_dropout_prob)),
            ("attention_probs_dropout_prob", Some(raw.attention_probs_dropout_prob)),
            ("classifier_dropout", raw.classifier_dropout),
        ];
        for (key, p) in dropouts {
            if let Some(p) = p.filter(|p| !(0.0..1.0).contains(p)) {
                return Err(format!("{key} must be in [0, 1), found {p}"));
            }
        }
        if !(raw.layer_norm_eps.is_finite() && raw.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps must be a positive number, found {}", raw.layer_norm_eps));
        }
        let labels = match raw.id2label {
            None => None,
            Some(map) => {
                let mut labels = vec![String::new(); map.len()];
                for (id, label) in map {
                    let i: usize = id.parse().map_err(|_| format!("id2label: '{id}' is not an integer id"))?;
                    let slot = labels.get_mut(i).ok_or_else(|| format!("id2label: id {i} out of range"))?;
                    *slot = label;
                }
                Some(labels)
            }
        };
        let task = match raw.architectures.iter().flatten().next().map(String::as_str) {
            Some("BertForTokenClassification") => Some(Task::Ner),
            Some("BertForSequenceClassification") => Some(match raw.problem_type.as_deref() {
                Some(p) => Task::Sequence(
                    SequenceKind::from_problem_type(p).ok_or_else(|| format!("unsupported problem_type '{p}'"))?,
                ),
                // transformers' rule when the type is not written down.
                None if labels.as_ref().is_some_and(|l| l.len() == 1) => Task::Sequence(SequenceKind::Regression),
                None => Task::Sequence(SequenceKind::Classify),
            }),
            _ => None,
        };
        let pooling = match raw.ferrotune_pooling.as_deref() {
            None => Pooling::Cls,
            Some(name) => <Pooling as clap::ValueEnum>::from_str(name, false)
                .map_err(|_| format!("ferrotune_pooling '{name}': expected cls or mean"))?,
        };
        Ok(Self {
            task,
            pooling,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            hidden_act,
            hidden_dropout_prob: raw.hidden_dropout_prob,
            attention_probs_dropout_prob: raw.attention_probs_dropout_prob,
            classifier_dropout: raw.classifier_dropout.unwrap_or(raw.hidden_dropout_prob),
            labels,
            quantization: match raw_value.get("quantization_config") {
                None | Some(serde_json::Value::Null) => None,
                Some(q) => Some(serde_json::from_value(q.clone()).map_err(|e| format!("quantization_config: {e}"))?),
            },
            lora: None,
            raw: raw_value,
        })
    }

    /// Refuses a tokenizer that can produce ids past `vocab_size`, naming
    /// the `config.json` at `path`.
    pub fn check_tokenizer_vocab(&self, path: &Path, tokenizer_vocab: usize) -> Result<(), ModelError> {
        if tokenizer_vocab > self.vocab_size {
            let message = format!(
                "vocab_size {} is smaller than the tokenizer's vocabulary ({tokenizer_vocab} tokens)",
                self.vocab_size
            );
            return Err(ModelError::Config { path: path.to_path_buf(), message });
        }
        Ok(())
    }

    /// The task of the fine-tuned model folder `dir` (from its
    /// `config.json`); a plain encoder checkpoint is an error that says so.
    pub fn fine_tuned_task(dir: &Path) -> Result<Task, ModelError> {
        let path = dir.join("config.json");
        Self::load(&path)?.task.ok_or_else(|| ModelError::Config {
            path,
            message: "not a fine-tuned model (no BertForTokenClassification or BertForSequenceClassification head); train one with `ferrotune train`".into(),
        })
    }

    /// The `config.json` of this encoder with a `task` head over `labels`
    /// (and `pooling` for sequence tasks), keeping every other key of the
    /// original file.
    pub fn to_head_json(&self, task: Task, labels: &[String], pooling: Pooling) -> serde_json::Value {
        let mut value = self.raw.clone();
        let object = value.as_object_mut().expect("config.json is an object");
        let architecture = match task {
            Task::Ner => "BertForTokenClassification",
            Task::Sequence(_) => "BertForSequenceClassification",
            Task::Retrieval => "BertModel",
        };
        object.insert("architectures".into(), serde_json::json!([architecture]));
        object.insert("model_type".into(), "bert".into());
        // A model saved from a quantized folder is saved in fp32.
        object.remove("quantization_config");
        match task {
            Task::Sequence(kind) => object.insert("problem_type".into(), kind.problem_type().into()),
            Task::Ner | Task::Retrieval => object.remove("problem_type"),
        };
        match (task, pooling) {
            (Task::Sequence(_), Pooling::Mean) => object.insert("ferrotune_pooling".into(), "mean".into()),
            _ => object.remove("ferrotune_pooling"),
        };
        let id2label: serde_json::Map<String, serde_json::Value> =
            labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
        object.insert("id2label".into(), id2label.into());
        object.insert("label2id".into(), label2id.into());
        object.remove("num_labels");
        value
    }
}

impl BertConfig {
    /// The `config.json` of the bare encoder (`BertModel`, as a
    /// sentence-transformers folder has it), keeping every other key of the
    /// original file but those of a head or a quantization.
    pub fn to_encoder_json(&self) -> serde_json::Value {
        let mut value = self.raw.clone();
        let object = value.as_object_mut().expect("config.json is an object");
        object.insert("architectures".into(), serde_json::json!(["BertModel"]));
        object.insert("model_type".into(), "bert".into());
        for key in ["quantization_config", "problem_type", "ferrotune_pooling", "id2label", "label2id", "num_labels"] {
            object.remove(key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 10,
        "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
        "extra_key": 7}"#;

    #[test]
    fn reads_defaults_and_keeps_unknown_keys() {
        let c = BertConfig::from_json(MINI).unwrap();
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.hidden_act, Activation::GeluErf);
        assert!(c.labels.is_none());
        let out = c.to_head_json(Task::Ner, &["O".into(), "B-X".into()], Pooling::Cls);
        assert_eq!(out["extra_key"], 7);
        assert_eq!(out["id2label"]["1"], "B-X");
        assert_eq!(out["label2id"]["O"], 0);
        assert_eq!(out["architectures"][0], "BertForTokenClassification");
        let back = BertConfig::from_json(&out.to_string()).unwrap();
        assert_eq!(back.labels.unwrap(), ["O", "B-X"]);
        assert_eq!(back.task, Some(Task::Ner));
    }

    #[test]
    fn sequence_tasks_round_trip() {
        let c = BertConfig::from_json(MINI).unwrap();
        assert_eq!(c.task, None);
        for task in SequenceKind::ALL.map(Task::Sequence) {
            for pooling in [Pooling::Cls, Pooling::Mean] {
                let out = c.to_head_json(task, &["a".into(), "b".into()], pooling);
                assert_eq!(out["architectures"][0], "BertForSequenceClassification");
                let back = BertConfig::from_json(&out.to_string()).unwrap();
                assert_eq!((back.task, back.pooling), (Some(task), pooling));
            }
        }
        let implicit = MINI.replace(
            "\"BertModel\"",
            "\"BertForSequenceClassification\"], \"id2label\": {\"0\": \"LABEL_0\"}, \"y\": [0",
        );
        assert_eq!(BertConfig::from_json(&implicit).unwrap().task, Some(Task::Sequence(SequenceKind::Regression)));
    }

    #[test]
    fn rejects_other_architectures() {
        let roberta = MINI.replace("\"bert\"", "\"roberta\"");
        assert!(BertConfig::from_json(&roberta).unwrap_err().contains("model_type 'roberta'"));
        let gpt = MINI.replace("BertModel", "GPT2Model");
        assert!(BertConfig::from_json(&gpt).unwrap_err().contains("GPT2Model"));
        let act = MINI.replace("\"extra_key\"", "\"hidden_act\": \"swish\", \"x\"");
        assert!(BertConfig::from_json(&act).unwrap_err().contains("swish"));
    }

    /// Issue 13, item 8: values out of range are refused naming the key.
    #[test]
    fn out_of_range_values_name_their_key() {
        let with = |key: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(MINI).unwrap();
            v[key] = serde_json::from_str(value).unwrap();
            BertConfig::from_json(&v.to_string())
        };
        for (key, value, expected) in [
            ("hidden_dropout_prob", "1.0", "hidden_dropout_prob must be in [0, 1), found 1"),
            ("attention_probs_dropout_prob", "-0.1", "attention_probs_dropout_prob must be in [0, 1)"),
            ("classifier_dropout", "1.5", "classifier_dropout must be in [0, 1)"),
            ("hidden_size", "0", "hidden_size must be a positive integer, found 0"),
            ("vocab_size", "-5", "vocab_size must be a positive integer, found -5"),
            ("max_position_embeddings", "\"512\"", "max_position_embeddings must be a positive integer"),
            ("num_attention_heads", "3", "hidden_size 8 is not a multiple of num_attention_heads 3"),
            ("layer_norm_eps", "0.0", "layer_norm_eps must be a positive number"),
        ] {
            let e = with(key, value).unwrap_err();
            assert!(e.starts_with(expected), "{key}: {e}");
        }
        assert!(with("classifier_dropout", "null").is_ok());
        assert!(with("hidden_dropout_prob", "0.0").is_ok());
        let c = BertConfig::from_json(MINI).unwrap();
        let e = c.check_tokenizer_vocab(Path::new("m/config.json"), 11).unwrap_err().to_string();
        assert_eq!(e, "m/config.json: vocab_size 10 is smaller than the tokenizer's vocabulary (11 tokens)");
        assert!(c.check_tokenizer_vocab(Path::new("m/config.json"), 10).is_ok());
    }
}
