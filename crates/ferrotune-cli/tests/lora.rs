//! LoRA end to end on tiny random models: `train --peft lora` writes an
//! adapter folder in PEFT's layout (and nothing of the frozen base),
//! `predict`/`eval --adapter` run it on its base, `merge` folds it into a
//! plain folder with the same outputs, and bad adapters are refused with
//! the file and key named (exit 1).

mod common;

use std::path::Path;

use common::{ferrotune, json_lines, stderr};

const WORDS: [&str; 10] = ["the", "patient", "has", "fever", "and", "cough", "no", "signs", "of", "asthma"];

const TRAIN: &str = "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\n\
no\tO\nsigns\tO\nof\tO\nasthma\tB-Disease\n\n";

/// A tiny base and an adapter that PEFT trained on it, with PEFT's word
/// probabilities (`scripts/peft_reference.py --fixture`).
fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft-tiny")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Trains a NER adapter on a tiny base; returns (base, data, adapter).
fn train_ner_adapter(t: &Path, targets: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 2).unwrap();
    let data = t.join("train.tsv");
    std::fs::write(&data, TRAIN.repeat(8)).unwrap();
    let out = t.join("out");
    #[rustfmt::skip]
    let o = ferrotune(
        &["train", "--model", s(&base), "--train", s(&data), "--dev", s(&data), "--output", s(&out),
          "--peft", "lora", "--lora-r", "4", "--lora-alpha", "8", "--lora-targets", targets,
          "--epochs", "3", "--batch-size", "4", "--lr", "0.02", "--max-len", "16", "--threads", "1"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("trainable"), "{}", stderr(&o));
    (base, data, out.join("model"))
}

#[test]
fn ner_adapter_trains_saves_in_peft_layout_predicts_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (base, data, adapter) = train_ner_adapter(t, "query,value,output.dense");

    // PEFT's files and names; the frozen base is not saved.
    assert!(!adapter.join("model.safetensors").exists());
    let config = read_json(&adapter.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "TOKEN_CLS");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier"]));
    assert_eq!(config["bias"], "none");
    // output.dense without attention.output.dense: a pattern, not PEFT's suffix match.
    assert!(config["target_modules"].as_str().unwrap().contains(r"output\.dense"), "{config}");
    let tensors =
        candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    assert!(tensors.contains_key("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"));
    assert!(tensors.contains_key("base_model.model.bert.encoder.layer.1.output.dense.lora_B.weight"));
    assert!(tensors.contains_key("base_model.model.classifier.weight"));
    assert!(!names.iter().any(|n| n.contains("attention.output.dense.lora") || n.contains("key.lora")), "{names:?}");
    assert_eq!(names.len(), 2 * 3 * 2 + 2, "{names:?}");
    let b = &tensors["base_model.model.bert.encoder.layer.0.attention.self.value.lora_B.weight"];
    let b_norm: f32 = b.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
    assert!(b_norm > 0.0, "B starts at zero and trained");
    assert_eq!(read_json(&adapter.join("config.json"))["id2label"]["1"], "B-Disease");

    // predict and eval with the adapter on its base.
    let input = "the patient has fever\nno signs of asthma\n";
    let adapted = ferrotune(&["predict", "--model", s(&base), "--adapter", s(&adapter)], input);
    assert!(adapted.status.success(), "{}", stderr(&adapted));
    let eval = ferrotune(&["eval", "--model", s(&base), "--adapter", s(&adapter), "--data", s(&data)], "");
    assert!(eval.status.success(), "{}", stderr(&eval));
    // Without --model: the local base its base_model_name_or_path names.
    let alone = ferrotune(&["predict", "--adapter", s(&adapter)], input);
    assert!(alone.status.success(), "{}", stderr(&alone));
    assert_eq!(json_lines(&alone), json_lines(&adapted));

    // merge: a plain folder, same tags and the same report.
    let merged = t.join("merged");
    let o = ferrotune(&["merge", "--model", s(&base), "--adapter", s(&adapter), "--output", s(&merged)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(merged.join("model.safetensors").is_file() && !merged.join("adapter_config.json").exists());
    let plain = ferrotune(&["predict", "--model", s(&merged)], input);
    assert!(plain.status.success(), "{}", stderr(&plain));
    // The same tags; scores to rounding (W + sBA is summed in another order
    // than xWᵀ + s(xAᵀ)Bᵀ).
    let (plain, adapted) = (json_lines(&plain), json_lines(&adapted));
    assert_eq!(plain.len(), adapted.len());
    for (p, a) in plain.iter().zip(&adapted) {
        assert_eq!((&p["tags"], &p["tokens"]), (&a["tags"], &a["tokens"]));
        for (pe, ae) in p["entities"].as_array().unwrap().iter().zip(a["entities"].as_array().unwrap()) {
            assert_eq!((&pe["start"], &pe["end"], &pe["type"]), (&ae["start"], &ae["end"], &ae["type"]));
            assert!((pe["score"].as_f64().unwrap() - ae["score"].as_f64().unwrap()).abs() < 1e-5, "{pe} {ae}");
        }
    }
    let eval_merged = ferrotune(&["eval", "--model", s(&merged), "--data", s(&data)], "");
    assert_eq!(String::from_utf8_lossy(&eval_merged.stdout), String::from_utf8_lossy(&eval.stdout));
}

#[test]
fn bad_adapters_name_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (base, _, adapter) = train_ner_adapter(t, "query,value");
    let run = |adapter: &Path| ferrotune(&["predict", "--model", s(&base), "--adapter", s(adapter)], "fever\n");
    let copy = |name: &str| {
        let dir = t.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&adapter).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        dir
    };
    let edit_config = |dir: &Path, key: &str, value: serde_json::Value| {
        let path = dir.join("adapter_config.json");
        let mut config = read_json(&path);
        config[key] = value;
        std::fs::write(&path, config.to_string()).unwrap();
    };
    let fails = |o: std::process::Output, needles: &[&str]| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        for needle in needles {
            assert!(stderr(&o).contains(needle), "{needle:?} not in: {}", stderr(&o));
        }
    };

    let missing = copy("missing");
    std::fs::remove_file(missing.join("adapter_config.json")).unwrap();
    fails(run(&missing), &["missing/adapter_config.json", "not found"]);

    // A hub name as the base, and no --model: the base must be given.
    let hub_base = copy("hub-base");
    edit_config(&hub_base, "base_model_name_or_path", "sentence-transformers/all-MiniLM-L6-v2".into());
    let o = ferrotune(&["predict", "--adapter", s(&hub_base)], "fever\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    for needle in ["hub-base/adapter_config.json", "base_model_name_or_path", "--model"] {
        assert!(stderr(&o).contains(needle), "{needle:?} not in: {}", stderr(&o));
    }

    let other_type = copy("adalora");
    edit_config(&other_type, "peft_type", "IA3".into());
    fails(run(&other_type), &["adalora/adapter_config.json", "peft_type 'IA3'"]);

    let unknown = copy("unknown");
    edit_config(&unknown, "target_modules", serde_json::json!(["query", "c_attn"]));
    fails(run(&unknown), &["unknown/adapter_config.json", "target_modules", "'c_attn'"]);

    let rank = copy("rank");
    edit_config(&rank, "r", 3.into());
    fails(run(&rank), &["rank/adapter_model.safetensors", "does not fit r = 3"]);

    let zero = copy("zero");
    edit_config(&zero, "r", 0.into());
    fails(run(&zero), &["zero/adapter", "r"]);

    // Another base (other weights, same shapes): the recorded hash differs.
    let other = t.join("other-base");
    ferrotune_model::tiny::write_tiny_bert(&other, &WORDS, 9).unwrap();
    let o = ferrotune(&["predict", "--model", s(&other), "--adapter", s(&adapter)], "fever\n");
    fails(o, &["adapter_model.safetensors", "SHA-256"]);

    // A base of another shape (the PEFT fixture's: hidden 16, not 32): the
    // matrices do not fit.
    let narrow = fixture().join("base");
    let mismatch = copy("mismatch");
    let weights = mismatch.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&tensors, &weights).unwrap(); // drops the recorded hash
    let o = ferrotune(&["predict", "--model", s(&narrow), "--adapter", s(&mismatch)], "fever\n");
    fails(o, &["mismatch/adapter_model.safetensors", "has shape"]);

    // Training options out of range are usage errors.
    let o = ferrotune(&["train", "--model", s(&base), "--train", "x.tsv", "--output", "o", "--lora-r", "0"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o =
        ferrotune(&["train", "--model", s(&base), "--train", "x.tsv", "--output", "o", "--lora-targets", "dense"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn sequence_adapter_saves_the_head_and_pooler_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let words = ["good", "great", "bad", "awful", "profit", "loss", "rose", "fell"];
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &words, 4).unwrap();
    let data = t.join("train.csv");
    let rows = "profit rose,positive\nloss fell,negative\ngreat profit,positive\n\"awful, bad loss\",negative\n";
    std::fs::write(&data, format!("text,label\n{}", rows.repeat(6))).unwrap();
    let out = t.join("out");
    #[rustfmt::skip]
    let o = ferrotune(
        &["train", "--task", "classify", "--model", s(&base), "--train", s(&data), "--dev", s(&data),
          "--output", s(&out), "--peft", "lora", "--lora-targets", "query,key,value,attention.output.dense,intermediate.dense,output.dense",
          "--lora-r", "2", "--epochs", "4", "--batch-size", "4", "--lr", "0.01", "--max-len", "16", "--threads", "1"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let adapter = out.join("model");
    let config = read_json(&adapter.join("adapter_config.json"));
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier", "pooler"]));
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 6);
    let tensors =
        candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert!(tensors.contains_key("base_model.model.bert.pooler.dense.weight"));
    assert!(tensors.contains_key("base_model.model.bert.encoder.layer.1.intermediate.dense.lora_A.weight"));

    let input = "profit rose\nawful loss\n";
    let adapted = ferrotune(&["predict", "--model", s(&base), "--adapter", s(&adapter)], input);
    assert!(adapted.status.success(), "{}", stderr(&adapted));
    let merged = t.join("merged");
    let o = ferrotune(&["merge", "--model", s(&base), "--adapter", s(&adapter), "--output", s(&merged)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = ferrotune(&["predict", "--model", s(&merged)], input);
    let (a, p) = (json_lines(&adapted), json_lines(&plain));
    for (a, p) in a.iter().zip(&p) {
        assert_eq!(a["label"], p["label"]);
        for (x, y) in a["scores"].as_object().unwrap().values().zip(p["scores"].as_object().unwrap().values()) {
            assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-4, "{a} vs {p}");
        }
    }
}

#[test]
fn a_peft_trained_adapter_gives_peft_probabilities_and_tags() {
    use candle_core::{Device, D};
    use ferrotune_model::lora::AdapterFolder;
    use ferrotune_model::{Batch, Mode, TokenClassifier};

    let (base, adapter_dir) = (fixture().join("base"), fixture().join("adapter"));
    let expected = read_json(&fixture().join("expected.json"));
    let adapter = AdapterFolder::read(&adapter_dir).unwrap();
    let base_weights = ferrotune_model::lora::BaseWeights::load(&base, &Device::Cpu).unwrap();
    let model = TokenClassifier::on_base(base_weights, &adapter).unwrap().frozen().unwrap();
    let sentences = expected["sentences"].as_array().unwrap();
    let mut worst = 0f64;
    for sentence in sentences {
        let ids: Vec<u32> =
            sentence["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let batch = Batch::pad(&[ids.as_slice()], 0).unwrap();
        let logits = model.forward(&batch, &mut Mode::Eval).unwrap();
        let probs: Vec<Vec<f32>> =
            candle_nn::ops::softmax(&logits.squeeze(0).unwrap(), D::Minus1).unwrap().to_vec2().unwrap();
        for (word, position) in sentence["first_subtoken"].as_array().unwrap().iter().enumerate() {
            let want = sentence["probs"][word].as_array().unwrap();
            for (p, w) in probs[position.as_u64().unwrap() as usize].iter().zip(want) {
                worst = worst.max((*p as f64 - w.as_f64().unwrap()).abs());
            }
        }
    }
    assert!(worst < 1e-4, "word probabilities differ from PEFT's by up to {worst}");

    let input: String = sentences.iter().map(|s| format!("{{\"tokens\": {}}}\n", s["words"])).collect();
    let o = ferrotune(
        &["predict", "--model", s(&base), "--adapter", s(&adapter_dir), "--format", "jsonl", "--max-len", "64"],
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (line, sentence) in json_lines(&o).iter().zip(sentences) {
        assert_eq!(line["tags"], sentence["tags"]);
    }
}

#[test]
fn retrieval_adapter_embeds_like_its_merged_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let words = ["card", "lost", "stolen", "refund", "late", "payment", "fee", "limit"];
    let base = t.join("st");
    common::write_tiny_sentence_model(&base, &words, 5);
    let mut pairs = "query\tpositive\n".to_string();
    for (i, a) in words.iter().enumerate() {
        for b in &words[i + 1..] {
            pairs += &format!("{a} {b}\t{b} {a} {b}\n");
        }
    }
    let data = t.join("pairs.tsv");
    std::fs::write(&data, pairs).unwrap();
    let out = t.join("out");
    #[rustfmt::skip]
    let o = ferrotune(
        &["train", "--task", "retrieval", "--model", s(&base), "--train", s(&data), "--output", s(&out),
          "--peft", "lora", "--lora-r", "4", "--lora-targets", "query,value", "--epochs", "2", "--batch-size", "5",
          "--lr", "0.01", "--max-len", "8", "--threads", "1"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let adapter = out.join("model");
    let config = read_json(&adapter.join("adapter_config.json"));
    assert_eq!(config["task_type"], "FEATURE_EXTRACTION");
    assert!(config["modules_to_save"].is_null());
    assert!(adapter.join("modules.json").is_file(), "the pooling is saved with the adapter");
    let tensors =
        candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert!(
        tensors.contains_key("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"),
        "a BertModel's names"
    );
    assert_eq!(tensors.len(), 2 * 2 * 2);

    let input = "lost card\nlate payment fee\n";
    let adapted = ferrotune(&["embed", "--model", s(&base), "--adapter", s(&adapter)], input);
    assert!(adapted.status.success(), "{}", stderr(&adapted));
    let plain = ferrotune(&["embed", "--model", s(&base)], input);
    assert_ne!(json_lines(&adapted), json_lines(&plain), "the adapter changes the embeddings");
    let merged = t.join("merged");
    let o = ferrotune(&["merge", "--model", s(&base), "--adapter", s(&adapter), "--output", s(&merged)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let from_merged = ferrotune(&["embed", "--model", s(&merged)], input);
    for (a, m) in json_lines(&adapted).iter().zip(&json_lines(&from_merged)) {
        for (x, y) in a["embedding"].as_array().unwrap().iter().zip(m["embedding"].as_array().unwrap()) {
            assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5);
        }
    }
}
