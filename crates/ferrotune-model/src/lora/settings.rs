//! What an adapter is: its rank, scaling, dropout and the matrices it adapts.

use serde::{Deserialize, Serialize};

/// A weight matrix of a BERT layer that LoRA can adapt, named as PEFT's
/// `target_modules` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoraTarget {
    /// `attention.self.query`.
    Query,
    /// `attention.self.key`.
    Key,
    /// `attention.self.value`.
    Value,
    /// `attention.output.dense`.
    AttentionOutput,
    /// `intermediate.dense`.
    Intermediate,
    /// `output.dense` (the feed-forward block's output).
    Output,
}

impl LoraTarget {
    /// All six, in the fused layer's order.
    pub const ALL: [LoraTarget; 6] = [
        LoraTarget::Query,
        LoraTarget::Key,
        LoraTarget::Value,
        LoraTarget::AttentionOutput,
        LoraTarget::Intermediate,
        LoraTarget::Output,
    ];

    /// The name `--lora-targets` takes.
    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::Query => "query",
            LoraTarget::Key => "key",
            LoraTarget::Value => "value",
            LoraTarget::AttentionOutput => "attention.output.dense",
            LoraTarget::Intermediate => "intermediate.dense",
            LoraTarget::Output => "output.dense",
        }
    }

    /// The module's path inside a layer (`encoder.layer.N.<path>`).
    pub fn module_path(self) -> &'static str {
        match self {
            LoraTarget::Query => "attention.self.query",
            LoraTarget::Key => "attention.self.key",
            LoraTarget::Value => "attention.self.value",
            LoraTarget::AttentionOutput => "attention.output.dense",
            LoraTarget::Intermediate => "intermediate.dense",
            LoraTarget::Output => "output.dense",
        }
    }

    /// The target of a `--lora-targets` name, `None` when unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The fused layer's slot (0 to 5).
    pub(crate) fn slot(self) -> usize {
        Self::ALL.iter().position(|&t| t == self).expect("one of ALL")
    }

    /// Parses a comma-separated list (`query,value`), sorted, without
    /// repeats; the error names the unknown entry.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        let mut targets = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let target = Self::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                format!("unknown LoRA target '{name}' (known: {})", known.join(", "))
            })?;
            targets.push(target);
        }
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err("no LoRA target given".into());
        }
        Ok(targets)
    }

    /// The targets as a comma-separated list.
    pub fn join(targets: &[Self]) -> String {
        targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")
    }
}

/// PEFT's `task_type` of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeftTaskType {
    /// Token classification (NER).
    #[serde(rename = "TOKEN_CLS")]
    TokenCls,
    /// Sequence classification.
    #[serde(rename = "SEQ_CLS")]
    SeqCls,
    /// A bare encoder (sentence embeddings).
    #[serde(rename = "FEATURE_EXTRACTION")]
    FeatureExtraction,
}

/// How new adapters start (PEFT's `init_lora_weights`); `B` is zero either
/// way, so training starts from the base's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoraInit {
    /// PEFT's default (`true`): `A` Kaiming-uniform with `a = √5`, i.e.
    /// uniform in ±1/√in.
    #[default]
    Default,
    /// PEFT's `"gaussian"`: `A` normal with standard deviation 1/r.
    Gaussian,
}

impl LoraInit {
    /// The value of `init_lora_weights` in `adapter_config.json`.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            LoraInit::Default => true.into(),
            LoraInit::Gaussian => "gaussian".into(),
        }
    }
}

/// An adapter's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSettings {
    /// Rank `r`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// Dropout on the adapters' input in training (`lora_dropout`).
    pub dropout: f32,
    /// The adapted matrices (in every layer).
    pub targets: Vec<LoraTarget>,
    /// rsLoRA: scale by `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
    /// How new adapters start (training only).
    pub init: LoraInit,
}

impl LoraSettings {
    /// The factor of the low-rank product.
    pub fn scaling(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Checks the rank against the model's `hidden` size and the other
    /// values' ranges; the error names the setting.
    pub fn validate(&self, hidden: usize) -> Result<(), String> {
        if self.rank == 0 || self.rank > hidden {
            return Err(format!("r must be between 1 and the hidden size {hidden}, found {}", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!("lora_alpha must be positive, found {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("lora_dropout must be in [0, 1), found {}", self.dropout));
        }
        if self.targets.is_empty() {
            return Err("target_modules is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_lists_parse_and_name_unknown_entries() {
        let t = LoraTarget::parse_list("value, query,value").unwrap();
        assert_eq!(t, [LoraTarget::Query, LoraTarget::Value]);
        assert_eq!(LoraTarget::join(&t), "query,value");
        let err = LoraTarget::parse_list("query,dense").unwrap_err();
        assert!(err.contains("unknown LoRA target 'dense'"), "{err}");
        assert!(LoraTarget::parse_list(" , ").is_err());
    }

    #[test]
    fn settings_check_their_ranges() {
        let s = LoraSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: vec![LoraTarget::Query],
            rslora: false,
            init: LoraInit::Default,
        };
        assert_eq!(s.scaling(), 2.0);
        assert!(s.validate(384).is_ok());
        assert!(LoraSettings { rank: 0, ..s.clone() }.validate(384).unwrap_err().contains("r must be"));
        assert!(LoraSettings { rank: 385, ..s.clone() }.validate(384).is_err());
        assert_eq!(LoraSettings { rank: 4, rslora: true, ..s }.scaling(), 8.0);
    }
}
