#![allow(dead_code)] // Each AFL++ binary uses one target.
//! The fuzz targets' bodies: each takes arbitrary bytes and must never
//! panic (errors are fine). Shared by the AFL++ binaries (`fuzz/src/bin/`)
//! and by the corpus replay test that CI runs
//! (`crates/ferrotune-cli/tests/fuzz_corpus.rs`).

use std::path::{Path, PathBuf};

/// A target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the corpus folders under `fuzz/corpus/`).
pub const TARGETS: [(&str, Target); 5] = [
    ("tagged", tagged),
    ("texts", texts),
    ("model_config", model_config),
    ("scorecard", scorecard),
    ("request", request),
];

/// A scratch folder of this process, reused by every run of a target.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrotune-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// The first byte picks a variant; the rest is the content.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// The CoNLL / JSONL reader of labelled NER files, and the label set.
pub fn tagged(data: &[u8]) {
    let (pick, content) = split(data);
    let name = ["a.conll", "a.tsv", "a.jsonl"][usize::from(pick) % 3];
    let path = write(&scratch(), name, content);
    if let Ok(sentences) = ferrotune_data::read_tagged(&path) {
        if let Ok(labels) = ferrotune_data::LabelSet::from_sentences(&sentences) {
            let _ = labels.encode(&sentences);
        }
    }
}

/// The TSV / CSV / JSONL reader of labelled texts, and the unlabelled
/// input reader of `predict` (text, JSONL, tables).
pub fn texts(data: &[u8]) {
    let (pick, content) = split(data);
    let name = ["a.tsv", "a.csv", "a.jsonl", "a.txt"][usize::from(pick) % 4];
    let path = write(&scratch(), name, content);
    let _ = ferrotune_data::read_texts(&path, pick & 4 != 0);
    if let Ok(reader) = ferrotune_data::read_inputs(Some(&path), None) {
        for input in reader.take(10_000) {
            let _ = input;
        }
    }
}

/// `config.json` and `tokenizer_config.json` (the two halves of the input,
/// split at the first NUL byte) with a small `vocab.txt`.
pub fn model_config(data: &[u8]) {
    let dir = scratch().join("model");
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, tokenizer_config) = (&data[..at], data.get(at + 1..).unwrap_or_default());
    write(&dir, "config.json", config);
    write(&dir, "tokenizer_config.json", tokenizer_config);
    write(&dir, "vocab.txt", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfever\n##s\n");
    if let Ok(c) = ferrotune_model::BertConfig::load(&dir.join("config.json")) {
        let _ = c.to_head_json(ferrotune_data::Task::Ner, &["O".into()], ferrotune_model::Pooling::Cls);
    }
    let _ = ferrotune_model::BertConfig::fine_tuned_task(&dir);
    if let Ok(t) = ferrotune_text::WordTokenizer::load(&dir) {
        let _ = t.windows(&["fevers".to_string()], 8);
    }
}

/// The brand scorecard TOML, scored when it loads.
pub fn scorecard(data: &[u8]) {
    let (pick, content) = split(data);
    let path = write(&scratch(), "card.toml", content);
    if let Ok(card) = ferrotune_brand::Scorecard::from_file(&path, pick & 1 != 0) {
        let _ = ferrotune_brand::score::score(&card);
    }
}

/// The server's request decoding for both prediction routes.
pub fn request(data: &[u8]) {
    let (pick, body) = split(data);
    let route = if pick & 1 == 0 { "/v1/ner" } else { "/v1/classify" };
    let content_type =
        ["application/json", "application/json; charset=utf-8", "text/plain"][usize::from(pick >> 1) % 3];
    if let Err(e) = ferrotune_serve::decode_request(route, Some(content_type), body) {
        assert!(e.status().is_client_error(), "{e:?}");
    }
}
