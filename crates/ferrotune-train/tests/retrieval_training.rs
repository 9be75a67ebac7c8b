//! Retrieval fine-tuning on a tiny random sentence encoder: the ranking
//! loss falls, the dev pass scores MRR@10, the saved folder is a
//! sentence-transformers folder that loads back, and a resumed run ends
//! with the same weights.

mod common;

use std::path::{Path, PathBuf};

use common::step_losses;
use ferrotune_data::Task;
use ferrotune_model::sentence::{PoolingMode, SentenceEncoder, SentencePooling};
use ferrotune_model::{Batch, Mode};
use ferrotune_train::{train, Silent, TrainError, TrainOptions, TrainRequest};

const WORDS: [&str; 8] = ["fever", "cough", "flu", "cold", "card", "lost", "pin", "atm"];

/// A tiny sentence-transformers folder (CLS pooling, normalised).
fn sentence_model(dir: &Path) -> PathBuf {
    let (base, model) = (dir.join("base"), dir.join("st"));
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 3).unwrap();
    let pooling = SentencePooling { mode: PoolingMode::Cls, normalize: true };
    SentenceEncoder::load(&base, Some(pooling), &candle_core::Device::Cpu).unwrap().save_pretrained(&model).unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &model).unwrap();
    model
}

/// Every ordered pair of words: the query "a b" is answered by "b a".
fn write_data(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (pairs, corpus, queries) = (dir.join("pairs.tsv"), dir.join("corpus.tsv"), dir.join("queries.tsv"));
    let (mut p, mut c, mut q) =
        ("query\tpositive\n".to_string(), "id\ttext\n".to_string(), "query\trelevant\n".to_string());
    for (i, a) in WORDS.iter().enumerate() {
        for b in &WORDS[i + 1..] {
            p += &format!("{a} {b}\t{b} {a}\n");
            c += &format!("{a}-{b}\t{b} {a}\n");
            q += &format!("{a} {b}\t{a}-{b}\n");
        }
    }
    std::fs::write(&pairs, p).unwrap();
    std::fs::write(&corpus, c).unwrap();
    std::fs::write(&queries, q).unwrap();
    (pairs, corpus, queries)
}

fn options() -> TrainOptions {
    TrainOptions {
        task: Task::Retrieval,
        epochs: 10,
        batch_size: 8,
        lr: 1e-2,
        max_len: 8,
        seed: 3,
        patience: 0,
        ..Default::default()
    }
}

fn embedding(dir: &Path) -> Vec<f32> {
    let model = SentenceEncoder::load(dir, None, &candle_core::Device::Cpu).unwrap();
    let batch = Batch::pad(&[&[2, 5, 6, 3]], 0).unwrap();
    model.forward(&batch, &mut Mode::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn loss_falls_dev_mrr_is_scored_and_the_folder_loads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let base = sentence_model(tmp.path());
    let (pairs, corpus, queries) = write_data(tmp.path());
    let run = |output: &Path, resume: bool, stop_after: Option<usize>| {
        train(
            &TrainRequest {
                model_dir: &base,
                train: &pairs,
                dev: Some(&queries),
                dev_corpus: Some(&corpus),
                output,
                options: options(),
                resume,
                device: candle_core::Device::Cpu,
                stop_after,
            },
            &mut Silent,
        )
    };
    let full = tmp.path().join("full");
    let summary = run(&full, false, None).unwrap();
    let losses = step_losses(&full);
    let per_epoch = losses.len() / 10;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..per_epoch]), mean(&losses[losses.len() - per_epoch..]));
    assert!(last < first * 0.7, "loss {first} -> {last}");
    let best = summary.best_dev_score.unwrap();
    assert!(best > 0.5 && best <= 1.0, "dev MRR@10 {best}");
    let model = full.join("model");
    for file in ["modules.json", "1_Pooling/config.json", "config_sentence_transformers.json", "vocab.txt"] {
        assert!(model.join(file).is_file(), "{file}");
    }
    let loaded = SentenceEncoder::load(&model, None, &candle_core::Device::Cpu).unwrap();
    assert_eq!(loaded.pooling, SentencePooling { mode: PoolingMode::Cls, normalize: true });
    assert_ne!(embedding(&model), embedding(&base), "trained");

    let resumed = tmp.path().join("resumed");
    run(&resumed, false, Some(4)).unwrap();
    run(&resumed, true, None).unwrap();
    assert_eq!(embedding(&resumed.join("model")), embedding(&model));

    let no_corpus = train(
        &TrainRequest {
            model_dir: &base,
            train: &pairs,
            dev: Some(&queries),
            dev_corpus: None,
            output: &tmp.path().join("x"),
            options: options(),
            resume: false,
            device: candle_core::Device::Cpu,
            stop_after: None,
        },
        &mut Silent,
    );
    assert!(matches!(no_corpus, Err(TrainError::RetrievalDev)));
}
