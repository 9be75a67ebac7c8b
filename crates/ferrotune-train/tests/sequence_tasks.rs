//! Every sequence task trains a tiny random BERT on a toy set until the loss
//! falls, saves a model that loads back with identical outputs, and keeps
//! its task, labels and pooling in config.json.

mod common;

use std::path::Path;

use common::step_losses;
use ferrotune_data::{SequenceKind, Task, TextInput};
use ferrotune_infer::{FineTuned, Record, RunSettings};
use ferrotune_model::{BertConfig, Pooling, SequenceClassifier, SequenceHead};
use ferrotune_train::{train, Silent, TrainOptions, TrainRequest};

const WORDS: [&str; 14] = [
    "good", "great", "bad", "awful", "profit", "loss", "rose", "fell", "the", "shares", "sales", "card", "lost", "fee",
];

/// Toy rows `(text_a, text_b, label)` per task.
fn rows(kind: SequenceKind, pairs: bool) -> Vec<(String, Option<String>, String)> {
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
            let (a, b) = if pairs {
                ("the shares".to_string(), Some(format!("{second} {text}")))
            } else {
                (text.to_string(), None)
            };
            let label = match kind {
                SequenceKind::Classify => class.to_string(),
                SequenceKind::Multilabel => multi.to_string(),
                SequenceKind::Regression => format!("{}", value + copy as f32 * 0.01),
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

fn train_task(kind: SequenceKind, pairs: bool, pooling: Pooling) -> (tempfile::TempDir, std::path::PathBuf, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 3).unwrap();
    let data = tmp.path().join("train.tsv");
    write_tsv(&data, &rows(kind, pairs));
    let output = tmp.path().join("out");
    let options = TrainOptions {
        task: Task::Sequence(kind),
        pooling,
        epochs: 15,
        batch_size: 4,
        lr: 1e-2,
        max_len: 16,
        seed: 9,
        patience: 0,
        ..Default::default()
    };
    let summary = train(
        &TrainRequest {
            model_dir: &base,
            train: &data,
            dev: Some(&data),
            dev_corpus: None,
            output: &output,
            options,
            resume: false,
            device: candle_core::Device::Cpu,
            stop_after: None,
        },
        &mut Silent,
    )
    .unwrap();
    let losses = step_losses(&output);
    let first: f64 = losses[..6].iter().sum::<f64>() / 6.0;
    let last: f64 = losses[losses.len() - 6..].iter().sum::<f64>() / 6.0;
    assert!(last < first / 2.0, "{kind:?}: loss fell from {first} to {last}, not by half");
    (tmp, summary.output, summary.best_dev_score.unwrap())
}

/// Every label's score of each input, in label order.
fn scores(dir: &Path, inputs: &[TextInput]) -> Vec<Vec<f32>> {
    let settings = RunSettings { max_len: 16, batch_size: 8, ..Default::default() };
    let model = FineTuned::load(dir, settings, &candle_core::Device::Cpu).unwrap();
    let records = model.run(inputs).unwrap().records;
    records
        .iter()
        .map(|r| match r {
            Record::Classify(c) => model.labels().iter().map(|l| c.scores[l]).collect(),
            Record::Ner(_) => panic!("a sequence model answered with entities"),
        })
        .collect()
}

fn round_trip(dir: &Path, pairs: bool) -> Vec<Vec<f32>> {
    let inputs: Vec<TextInput> = if pairs {
        vec![
            TextInput::Pair("the shares".into(), "good the profit rose".into()),
            TextInput::Pair("the shares".into(), "bad shares fell".into()),
        ]
    } else {
        vec![TextInput::Text("the profit rose".into()), TextInput::Text("shares fell".into())]
    };
    let first = scores(dir, &inputs);
    let again = dir.with_extension("again");
    let model = SequenceClassifier::load(dir, SequenceHead::Saved, &candle_core::Device::Cpu).unwrap();
    model.save_pretrained(&again).unwrap();
    ferrotune_text::copy_tokenizer_files(dir, &again).unwrap();
    assert_eq!(scores(&again, &inputs), first, "save/load changed outputs");
    first
}

#[test]
fn classify_learns_single_texts_and_round_trips() {
    let (_tmp, out, dev_macro_f1) = train_task(SequenceKind::Classify, false, Pooling::Cls);
    assert!(dev_macro_f1 > 0.99, "dev macro F1 {dev_macro_f1}");
    let config = BertConfig::load(&out.join("config.json")).unwrap();
    assert_eq!((config.task, config.pooling), (Some(Task::Sequence(SequenceKind::Classify)), Pooling::Cls));
    assert_eq!(config.labels.unwrap(), ["negative", "positive"]);
    let scores = round_trip(&out, false);
    assert!(scores[0][1] > 0.5 && scores[1][0] > 0.5, "{scores:?}");
}

#[test]
fn classify_learns_from_the_second_text_of_pairs() {
    let (_tmp, out, dev_macro_f1) = train_task(SequenceKind::Classify, true, Pooling::Mean);
    assert!(dev_macro_f1 > 0.99, "dev macro F1 {dev_macro_f1}");
    assert_eq!(BertConfig::load(&out.join("config.json")).unwrap().pooling, Pooling::Mean);
    let scores = round_trip(&out, true);
    assert!(scores[0][1] > 0.5 && scores[1][0] > 0.5, "{scores:?}");
}

#[test]
fn multilabel_learns_label_sets() {
    let (_tmp, out, dev_micro_f1) = train_task(SequenceKind::Multilabel, false, Pooling::Cls);
    assert!(dev_micro_f1 > 0.9, "dev micro F1 {dev_micro_f1}");
    let config = BertConfig::load(&out.join("config.json")).unwrap();
    assert_eq!(config.labels.unwrap(), ["bad", "card", "finance", "good"]);
    round_trip(&out, false);
}

#[test]
fn regression_learns_values() {
    let (_tmp, out, negative_mse) = train_task(SequenceKind::Regression, false, Pooling::Cls);
    assert!(-negative_mse < 0.1, "dev MSE {}", -negative_mse);
    let scores = round_trip(&out, false);
    assert!(scores[0][0] > 0.5 && scores[1][0] < -0.5, "{scores:?}");
}
