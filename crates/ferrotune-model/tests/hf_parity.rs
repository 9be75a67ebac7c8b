//! Parity with Python `transformers` on the demo model (fixture made by
//! scripts/make_parity_fixture.py), and gradients reaching every parameter.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use ferrotune_model::{Batch, Mode, TokenClassifier, TokenHead};
use ferrotune_text::WordTokenizer;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo model folder: `FERROTUNE_DEMO_MODEL` or `models/all-MiniLM-L6-v2`.
fn demo_model() -> PathBuf {
    let dir = std::env::var_os("FERROTUNE_DEMO_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "demo model not found at {}: run `bash scripts/fetch-model.sh` first",
        dir.display()
    );
    dir
}

#[test]
fn last_hidden_state_matches_transformers() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected = candle_core::safetensors::load(fixtures.join("minilm_parity.safetensors"), &Device::Cpu).unwrap();
    let sentences: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("minilm_parity.json")).unwrap()).unwrap();
    let ids: Vec<Vec<i64>> = expected["input_ids"].to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = expected["attention_mask"].to_vec2().unwrap();

    // Our tokenizer gives the ids transformers gave for the same words.
    let dir = demo_model();
    let tokenizer = WordTokenizer::load(&dir).unwrap();
    let mut sequences = Vec::new();
    for (i, words) in sentences["sentences"].as_array().unwrap().iter().enumerate() {
        let words: Vec<String> = words.as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();
        let mut seq = vec![tokenizer.cls_id];
        seq.extend(tokenizer.encode_words(&words).unwrap().concat());
        seq.push(tokenizer.sep_id);
        let real = mask[i].iter().filter(|m| **m == 1).count();
        let theirs: Vec<u32> = ids[i][..real].iter().map(|&v| v as u32).collect();
        assert_eq!(seq, theirs, "token ids of sentence {i}");
        sequences.push(seq);
    }

    let labels = vec!["O".to_string()];
    let model = TokenClassifier::load(&dir, TokenHead::For { labels: &labels, seed: 0 }, &Device::Cpu).unwrap();
    let refs: Vec<&[u32]> = sequences.iter().map(|s| s.as_slice()).collect();
    let batch = Batch::pad(&refs, tokenizer.pad_id).unwrap();
    let ours = model.hidden_states(&batch, &mut Mode::Eval).unwrap();
    let theirs = &expected["last_hidden_state"];
    assert_eq!(ours.dims(), theirs.dims());
    let mut worst = 0f32;
    for (i, row) in mask.iter().enumerate() {
        let real = row.iter().filter(|m| **m == 1).count();
        let a = ours.get(i).unwrap().narrow(0, 0, real).unwrap();
        let b = theirs.get(i).unwrap().narrow(0, 0, real).unwrap();
        let diff: f32 = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        worst = worst.max(diff);
    }
    eprintln!("max abs difference to transformers: {worst:e}");
    assert!(worst < 1e-4, "max abs difference {worst} exceeds 1e-4");
}

#[test]
fn every_parameter_receives_a_gradient() {
    let dir = tempfile::tempdir().unwrap();
    ferrotune_model::tiny::write_tiny_bert(dir.path(), &["fever", "cough"], 1).unwrap();
    let labels: Vec<String> = ["O", "B-X", "I-X"].map(String::from).to_vec();
    let model = TokenClassifier::load(dir.path(), TokenHead::For { labels: &labels, seed: 1 }, &Device::Cpu).unwrap();
    let batch = Batch::pad(&[&[2, 5, 6, 3], &[2, 6, 3]], 0).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let logits = model.forward(&batch, &mut Mode::Train(&mut rng)).unwrap();
    let positions = Tensor::new(&[1u32, 2, 5], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[1u32, 2, 0], &Device::Cpu).unwrap();
    let loss = model.loss(&logits, &positions, &targets).unwrap();
    let grads = loss.backward().unwrap();
    let mut count = 0;
    for (name, var) in model.params().iter() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_dtype(DType::F32).unwrap().to_scalar().unwrap();
        assert!(norm > 0.0, "zero gradient for {name}");
        count += 1;
    }
    // 5 embedding tensors, 16 per layer, 2 for the head; no pooler.
    assert_eq!(count, 5 + 2 * 16 + 2);
}

#[test]
fn save_and_load_give_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &["fever"], 4).unwrap();
    let labels: Vec<String> = ["O", "B-X", "I-X"].map(String::from).to_vec();
    let model = TokenClassifier::load(&base, TokenHead::For { labels: &labels, seed: 9 }, &Device::Cpu).unwrap();
    let saved = tmp.path().join("saved");
    model.save_pretrained(&saved).unwrap();
    let loaded = TokenClassifier::load(&saved, TokenHead::Saved, &Device::Cpu).unwrap();
    assert_eq!(loaded.labels, labels);
    let batch = Batch::pad(&[&[2, 5, 9, 3], &[2, 7, 3]], 0).unwrap();
    let a: Vec<f32> = model.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = loaded.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
    // The saved head is reused when the labels match, replaced when they differ.
    let same = TokenClassifier::load(&saved, TokenHead::For { labels: &labels, seed: 1 }, &Device::Cpu).unwrap();
    let c: Vec<f32> = same.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, c);
    let other: Vec<String> = ["O", "B-Y", "I-Y"].map(String::from).to_vec();
    let fresh = TokenClassifier::load(&saved, TokenHead::For { labels: &other, seed: 1 }, &Device::Cpu).unwrap();
    let d: Vec<f32> = fresh.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_ne!(a, d);
    // A mis-shaped tensor is named.
    let tensors = candle_core::safetensors::load(saved.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut broken: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    broken.insert("bert.encoder.layer.1.output.dense.bias".into(), Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&broken, saved.join("model.safetensors")).unwrap();
    let err = TokenClassifier::load(&saved, TokenHead::Saved, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("'encoder.layer.1.output.dense.bias' has shape [5]"), "{err}");
    broken.remove("bert.encoder.layer.1.output.dense.bias");
    candle_core::safetensors::save(&broken, saved.join("model.safetensors")).unwrap();
    let err = TokenClassifier::load(&saved, TokenHead::Saved, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("missing tensor 'encoder.layer.1.output.dense.bias'"), "{err}");
}
