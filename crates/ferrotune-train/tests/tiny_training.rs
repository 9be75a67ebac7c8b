//! End-to-end training on a tiny random BERT and a toy corpus.

mod common;

use std::path::Path;

use common::step_losses;
use ferrotune_model::{Batch, Mode, TokenClassifier, TokenHead};
use ferrotune_train::{train, Silent, TrainOptions, TrainRequest};

const WORDS: [&str; 12] =
    ["the", "patient", "has", "fever", "and", "cough", "no", "signs", "of", "asthma", "severe", "flu"];

/// A toy corpus: diseases (fever, cough, asthma, flu, "severe flu") tagged.
fn write_corpus(path: &Path, copies: usize) {
    let sentences: [&[(&str, &str)]; 4] = [
        &[("the", "O"), ("patient", "O"), ("has", "O"), ("fever", "B-Disease"), ("and", "O"), ("cough", "B-Disease")],
        &[("no", "O"), ("signs", "O"), ("of", "O"), ("asthma", "B-Disease")],
        &[("the", "O"), ("patient", "O"), ("has", "O"), ("severe", "B-Disease"), ("flu", "I-Disease")],
        &[("signs", "O"), ("of", "O"), ("fever", "B-Disease")],
    ];
    let mut text = String::new();
    for _ in 0..copies {
        for s in &sentences {
            for (w, t) in s.iter() {
                text += &format!("{w}\t{t}\n");
            }
            text += "\n";
        }
    }
    std::fs::write(path, text).unwrap();
}

fn options() -> TrainOptions {
    TrainOptions { epochs: 4, batch_size: 4, lr: 5e-3, max_len: 16, seed: 5, patience: 0, ..Default::default() }
}

fn logits(dir: &Path) -> Vec<f32> {
    let model = TokenClassifier::load(&ferrotune_model::model_folder(dir), TokenHead::Saved, &candle_core::Device::Cpu)
        .unwrap();
    let batch = Batch::pad(&[&[2, 5, 6, 7, 8, 3]], 0).unwrap();
    model.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn loss_halves_and_resume_gives_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 11).unwrap();
    let data = tmp.path().join("train.tsv");
    write_corpus(&data, 12);

    let full = tmp.path().join("full");
    let request = |output: &Path, resume: bool, stop_after: Option<usize>| {
        train(
            &TrainRequest {
                model_dir: &base,
                train: &data,
                dev: Some(&data),
                dev_corpus: None,
                output,
                options: options(),
                resume,
                device: candle_core::Device::Cpu,
                stop_after,
            },
            &mut Silent,
        )
        .unwrap()
    };
    let summary = request(&full, false, None);
    assert_eq!(summary.epochs_done, 4);
    let losses = step_losses(&full);
    assert_eq!(losses.len(), 48, "12 steps per epoch");
    let first: f64 = losses[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = losses[losses.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(last < first / 2.0, "loss fell from {first} to {last}, not by half");
    assert!(summary.best_dev_score.unwrap() > 0.9, "{summary:?}");

    // Same seed, same threads: same model.
    let again = tmp.path().join("again");
    request(&again, false, None);
    assert_eq!(logits(&full), logits(&again));

    // A run stopped after epoch 1 and resumed ends with the same model.
    let resumed = tmp.path().join("resumed");
    let partial = request(&resumed, false, Some(1));
    assert_eq!(partial.epochs_done, 1);
    let finished = request(&resumed, true, None);
    assert_eq!(finished.epochs_done, 4);
    assert_eq!(logits(&full), logits(&resumed));
    assert_eq!(step_losses(&resumed), losses);

    // The saved folder is a Hugging Face token-classification model.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    assert_eq!(config["id2label"]["1"], "B-Disease");
    assert!(full.join("model/vocab.txt").is_file());
}

#[test]
fn resume_with_other_options_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 3).unwrap();
    let data = tmp.path().join("train.tsv");
    write_corpus(&data, 1);
    let out = tmp.path().join("out");
    let run = |options: TrainOptions| {
        train(
            &TrainRequest {
                model_dir: &base,
                train: &data,
                dev: None,
                dev_corpus: None,
                output: &out,
                options,
                resume: true,
                device: candle_core::Device::Cpu,
                stop_after: Some(1),
            },
            &mut Silent,
        )
    };
    run(options()).unwrap();
    let err = run(TrainOptions { lr: 2e-3, ..options() }).unwrap_err().to_string();
    assert!(err.contains("other options"), "{err}");
}

/// Issue 13, item 10: a run killed mid-epoch leaves that epoch's step lines
/// (and maybe a torn line) in `metrics.jsonl`; the resumed run drops them and
/// logs exactly what an uninterrupted run logs.
#[test]
fn resume_after_a_kill_mid_epoch_logs_each_step_once() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 3).unwrap();
    let data = tmp.path().join("train.tsv");
    write_corpus(&data, 2);
    let run = |output: &Path, options: TrainOptions, resume: bool, stop_after: Option<usize>| {
        train(
            &TrainRequest {
                model_dir: &base,
                train: &data,
                dev: None,
                dev_corpus: None,
                output,
                options,
                resume,
                device: candle_core::Device::Cpu,
                stop_after,
            },
            &mut Silent,
        )
    };
    let two = TrainOptions { epochs: 2, ..options() };
    let full = tmp.path().join("full");
    run(&full, two.clone(), false, None).unwrap();
    let killed = tmp.path().join("killed");
    run(&killed, two.clone(), false, Some(1)).unwrap();
    // What a kill in epoch 2 leaves: its first steps' lines and a torn one.
    let full_log = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let epoch_two: Vec<&str> = full_log.lines().filter(|l| l.contains("\"epoch\":2")).take(2).collect();
    let mut log = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    log += &format!("{}\n{}\n{{\"type\":\"step\",\"ep", epoch_two[0], epoch_two[1]);
    std::fs::write(killed.join("metrics.jsonl"), log).unwrap();
    run(&killed, two.clone(), true, None).unwrap();
    assert_eq!(step_losses(&killed), step_losses(&full));
    let lines = |dir: &Path| std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().count();
    assert_eq!(lines(&killed), lines(&full));
    assert_eq!(logits(&killed), logits(&full));

    // A finished run extends with more epochs; other changes are refused
    // naming each option.
    let more = run(&killed, TrainOptions { epochs: 3, ..two.clone() }, true, None).unwrap();
    assert_eq!(more.epochs_done, 3);
    let err = run(&killed, TrainOptions { epochs: 3, lr: 2e-3, seed: 6, ..two }, true, None).unwrap_err().to_string();
    assert!(err.contains("lr 0.005 (now 0.002)") && err.contains("seed 5 (now 6)"), "{err}");
    assert!(!err.contains("epochs 2") && !err.contains("epochs 3"), "{err}");
}

/// Mixed precision learns the same toy task: its losses follow fp32's
/// closely without being equal (the bf16 products ran), and the saved
/// weights are fp32.
#[test]
fn bf16_mixed_precision_learns_like_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 11).unwrap();
    let data = tmp.path().join("train.tsv");
    write_corpus(&data, 12);
    let run = |name: &str, precision| {
        let output = tmp.path().join(name);
        let options = TrainOptions { precision, ..options() };
        let request = TrainRequest {
            model_dir: &base,
            train: &data,
            dev: Some(&data),
            dev_corpus: None,
            output: &output,
            options,
            resume: false,
            device: candle_core::Device::Cpu,
            stop_after: None,
        };
        let summary = train(&request, &mut Silent).unwrap();
        (step_losses(&output), summary.best_dev_score.unwrap(), output)
    };
    let (fp32, _, _) = run("fp32", ferrotune_model::quant::Precision::Fp32);
    let (bf16, dev, output) = run("bf16", ferrotune_model::quant::Precision::Bf16);
    assert_ne!(fp32, bf16);
    assert!((fp32[0] - bf16[0]).abs() < 0.02 * fp32[0], "first step: {} vs {}", fp32[0], bf16[0]);
    let last = |l: &[f64]| l[l.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(last(&bf16) < bf16[0] / 2.0, "bf16 loss fell from {} to {}", bf16[0], last(&bf16));
    assert!(dev > 0.9, "bf16 dev F1 {dev}");
    let saved =
        candle_core::safetensors::load(output.join("model/model.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert!(saved.values().all(|t| t.dtype() == candle_core::DType::F32));
}
