//! Every sequence task trains a tiny random BERT on a toy set until the loss
//! falls, saves a model that loads back with identical outputs, and keeps
//! its task, labels and pooling in config.json.

use std::path::Path;

use ferrotune_data::Task;
use ferrotune_infer::TextClassifier;
use ferrotune_model::{BertConfig, Pooling};
use ferrotune_train::{train, TrainOptions, TrainRequest};

const WORDS: [&str; 14] =
    ["good", "great", "bad", "awful", "profit", "loss", "rose", "fell", "the", "shares", "sales", "card", "lost", "fee"];

/// Toy rows `(text_a, text_b, label)` per task.
fn rows(task: Task, pairs: bool) -> Vec<(String, Option<String>, String)> {
    let base: [(&str, &str, &str, f32, &str); 4] = [
        ("the profit rose", "good", "positive", 1.0, "finance|good"),
        ("shares fell", "bad", "negative", -1.0, "finance|bad"),
        ("great sales", "good", "positive", 0.8, "good"),
        ("the card lost", "awful", "negative", -0.7, "bad|card"),
    ];
    let mut out = Vec::new();
    for copy in 0..6 {
        for (text, second, class, value, multi) in base {
            // In pair mode the class is carried by the second text only.
            let (a, b) = if pairs { ("the shares".to_string(), Some(format!("{second} {text}"))) } else { (text.to_string(), None) };
            let label = match task {
                Task::Classify => class.to_string(),
                Task::Multilabel => multi.to_string(),
                _ => format!("{}", value + copy as f32 * 0.01),
            };
            out.push((a, b, label));
        }
    }
    out
}

fn write_tsv(path: &Path, rows: &[(String, Option<String>, String)]) {
    let pairs = rows[0].1.is_some();
    let mut text = if pairs { "text_a\ttext_b\tlabel\n" } else { "text\tlabel\n" }.to_string();
    for (a, b, l) in rows {
        match b {
            Some(b) => text += &format!("{a}\t{b}\t{l}\n"),
            None => text += &format!("{a}\t{l}\n"),
        }
    }
    std::fs::write(path, text).unwrap();
}

fn step_losses(output: &Path) -> Vec<f64> {
    std::fs::read_to_string(output.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

fn train_task(task: Task, pairs: bool, pooling: Pooling) -> (tempfile::TempDir, std::path::PathBuf, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 3).unwrap();
    let data = tmp.path().join("train.tsv");
    write_tsv(&data, &rows(task, pairs));
    let output = tmp.path().join("out");
    let options = TrainOptions {
        task,
        pooling,
        epochs: 15,
        batch_size: 4,
        lr: 1e-2,
        max_len: 16,
        seed: 9,
        patience: 0,
        ..Default::default()
    };
    let summary = train(&TrainRequest {
        model_dir: &base,
        train: &data,
        dev: Some(&data),
        output: &output,
        options,
        resume: false,
        device: candle_core::Device::Cpu,
        stop_after: None,
    })
    .unwrap();
    let losses = step_losses(&output);
    let first: f64 = losses[..6].iter().sum::<f64>() / 6.0;
    let last: f64 = losses[losses.len() - 6..].iter().sum::<f64>() / 6.0;
    assert!(last < first / 2.0, "{task:?}: loss fell from {first} to {last}, not by half");
    (tmp, output, summary.best_dev_score.unwrap())
}

fn round_trip(dir: &Path, pairs: bool) -> Vec<Vec<f32>> {
    let texts: Vec<(&str, Option<&str>)> = if pairs {
        vec![("the shares", Some("good the profit rose")), ("the shares", Some("bad shares fell"))]
    } else {
        vec![("the profit rose", None), ("shares fell", None)]
    };
    let first = TextClassifier::load(dir, 16, 8, &candle_core::Device::Cpu).unwrap();
    let scores = first.score(&texts).unwrap();
    let again = dir.with_extension("again");
    first.model.save_pretrained(&again).unwrap();
    ferrotune_text::copy_tokenizer_files(dir, &again).unwrap();
    assert_eq!(TextClassifier::load(&again, 16, 8, &candle_core::Device::Cpu).unwrap().score(&texts).unwrap(), scores, "save/load changed outputs");
    scores
}

#[test]
fn classify_learns_single_texts_and_round_trips() {
    let (_tmp, out, dev_macro_f1) = train_task(Task::Classify, false, Pooling::Cls);
    assert!(dev_macro_f1 > 0.99, "dev macro F1 {dev_macro_f1}");
    let config = BertConfig::from_file(&out.join("config.json")).unwrap();
    assert_eq!((config.task, config.pooling), (Some(Task::Classify), Pooling::Cls));
    assert_eq!(config.labels.unwrap(), ["negative", "positive"]);
    let scores = round_trip(&out, false);
    assert!(scores[0][1] > 0.5 && scores[1][0] > 0.5, "{scores:?}");
}

#[test]
fn classify_learns_from_the_second_text_of_pairs() {
    let (_tmp, out, dev_macro_f1) = train_task(Task::Classify, true, Pooling::Mean);
    assert!(dev_macro_f1 > 0.99, "dev macro F1 {dev_macro_f1}");
    assert_eq!(BertConfig::from_file(&out.join("config.json")).unwrap().pooling, Pooling::Mean);
    let scores = round_trip(&out, true);
    assert!(scores[0][1] > 0.5 && scores[1][0] > 0.5, "{scores:?}");
}

#[test]
fn multilabel_learns_label_sets() {
    let (_tmp, out, dev_micro_f1) = train_task(Task::Multilabel, false, Pooling::Cls);
    assert!(dev_micro_f1 > 0.9, "dev micro F1 {dev_micro_f1}");
    let config = BertConfig::from_file(&out.join("config.json")).unwrap();
    assert_eq!(config.labels.unwrap(), ["bad", "card", "finance", "good"]);
    round_trip(&out, false);
}

#[test]
fn regression_learns_values() {
    let (_tmp, out, negative_mse) = train_task(Task::Regression, false, Pooling::Cls);
    assert!(-negative_mse < 0.1, "dev MSE {}", -negative_mse);
    let scores = round_trip(&out, false);
    assert!(scores[0][0] > 0.5 && scores[1][0] < -0.5, "{scores:?}");
}
