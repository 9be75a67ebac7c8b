//! Helpers shared by the end-to-end tests: running the `ferrotune` binary.

// Each test file uses some of these.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `ferrotune` with `args`, `stdin` on its standard input.
pub fn ferrotune(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that fails on its arguments exits before reading its input.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// The standard error of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The JSON lines of a run's standard output.
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A tiny random BERT written to `dir` as a sentence-transformers folder
/// (mean pooling, then Normalize, as the demo model).
pub fn write_tiny_sentence_model(dir: &std::path::Path, words: &[&str], seed: u64) {
    use ferrotune_model::sentence::{PoolingMode, SentenceEncoder, SentencePooling};
    let base = dir.with_extension("bert");
    ferrotune_model::tiny::write_tiny_bert(&base, words, seed).unwrap();
    let pooling = SentencePooling { mode: PoolingMode::Mean, normalize: true };
    SentenceEncoder::load(&base, Some(pooling), &candle_core::Device::Cpu).unwrap().save_pretrained(dir).unwrap();
    ferrotune_text::copy_tokenizer_files(&base, dir).unwrap();
}
