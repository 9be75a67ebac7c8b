//! Tiny random BERT checkpoints, for tests and examples that must not depend
//! on a downloaded model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelError;

/// Writes a Hugging Face-style BERT folder with random weights: `config.json`
/// (hidden 32, 2 layers, 4 heads), `model.safetensors` (with the `bert.`
/// prefix and a pooler, as real checkpoints have) and a `vocab.txt` made of
/// the special tokens, `words` and the single letters.
pub fn write_tiny_bert(dir: &Path, words: &[&str], seed: u64) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec();
    for w in words {
        if !vocab.iter().any(|v| v == w) {
            vocab.push(w.to_string());
        }
    }
    for c in 'a'..='z' {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    // 128 positions (the default `max_len`); the first 64 rows are drawn
    // where they always were and the rest last, so that the weights of
    // earlier versions (with 64 positions) are unchanged.
    let (hidden, layers, inner, positions, first_positions) = (32, 2, 64, 128, 64);
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab.len(),
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
        "intermediate_size": inner, "max_position_embeddings": positions, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "pad_token_id": 0
    });
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| ModelError::io(&path, e))
    };
    write("config.json", serde_json::to_string_pretty(&config).expect("json").as_bytes())?;
    write("vocab.txt", (vocab.join("\n") + "\n").as_bytes())?;
    write("tokenizer_config.json", br#"{"do_lower_case": true}"#)?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    let mut add = |name: &str, shape: &[usize], fill: Option<f32>| -> Result<(), ModelError> {
        let n = shape.iter().product();
        let data: Vec<f32> = match fill {
            Some(v) => vec![v; n],
            None => (0..n).map(|_| (rng.random::<f32>() - 0.5) * 0.2).collect(),
        };
        tensors.insert(format!("bert.{name}"), Tensor::from_vec(data, shape, &Device::Cpu)?);
        Ok(())
    };
    add("embeddings.word_embeddings.weight", &[vocab.len(), hidden], None)?;
    add("embeddings.position_embeddings.weight", &[first_positions, hidden], None)?;
    add("embeddings.token_type_embeddings.weight", &[2, hidden], None)?;
    add("embeddings.LayerNorm.weight", &[hidden], Some(1.0))?;
    add("embeddings.LayerNorm.bias", &[hidden], Some(0.0))?;
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", hidden, hidden),
            ("attention.self.key", hidden, hidden),
            ("attention.self.value", hidden, hidden),
            ("attention.output.dense", hidden, hidden),
            ("intermediate.dense", inner, hidden),
            ("output.dense", hidden, inner),
        ] {
            add(&format!("{p}.{name}.weight"), &[out, inp], None)?;
            add(&format!("{p}.{name}.bias"), &[out], None)?;
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(&format!("{p}.{norm}.weight"), &[hidden], Some(1.0))?;
            add(&format!("{p}.{norm}.bias"), &[hidden], Some(0.0))?;
        }
    }
    add("pooler.dense.weight", &[hidden, hidden], None)?;
    add("pooler.dense.bias", &[hidden], None)?;
    add("more_positions", &[positions - first_positions, hidden], None)?;
    let name = "bert.embeddings.position_embeddings.weight";
    let more = tensors.remove("bert.more_positions").expect("just added");
    let all = Tensor::cat(&[&tensors[name], &more], 0)?;
    tensors.insert(name.to_string(), all);
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path)?;
    Ok(())
}
