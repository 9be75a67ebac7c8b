//! `ferrotune train --task retrieval` and `ferrotune eval --task retrieval`
//! end to end on a tiny random sentence encoder: the trained folder is
//! evaluated against a corpus (table and --json with the evaluator's
//! metric names), and bad retrieval files are named by file and line.

mod common;

use std::path::Path;

use common::{ferrotune, stderr};
use ferrotune_model::sentence::{PoolingMode, SentenceEncoder, SentencePooling};

const WORDS: [&str; 6] = ["fever", "cough", "flu", "card", "lost", "pin"];

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn retrieval_train_eval_and_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (base, st) = (t.join("base"), t.join("st"));
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 5).unwrap();
    let pooling = SentencePooling { mode: PoolingMode::Mean, normalize: true };
    SentenceEncoder::load(&base, Some(pooling), &candle_core::Device::Cpu).unwrap().save_pretrained(&st).unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &st).unwrap();
    let (mut pairs, mut corpus, mut queries) =
        ("query\tpositive\n".to_string(), "id\ttext\n".to_string(), "query\trelevant\n".to_string());
    for (i, a) in WORDS.iter().enumerate() {
        for b in &WORDS[i + 1..] {
            pairs += &format!("{a} {b}\t{b} {a} {b}\n");
            corpus += &format!("{a}-{b}\t{b} {a} {b}\n");
            queries += &format!("{a} {b}\t{a}-{b}\n");
        }
    }
    let pairs = write(&t.join("pairs.tsv"), &pairs);
    let corpus = write(&t.join("corpus.tsv"), &corpus);
    let queries = write(&t.join("queries.tsv"), &queries);
    let out = t.join("out");
    let o = out.to_str().unwrap();
    let flags = ["--epochs", "2", "--batch-size", "5", "--lr", "0.003", "--max-len", "8", "--threads", "1"];
    let mut args = vec!["train", "--task", "retrieval", "--model", st.to_str().unwrap(), "--train", &pairs];
    args.extend(["--dev", &queries, "--dev-corpus", &corpus, "--output", o]);
    args.extend(flags);
    let run = ferrotune(&args, "");
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.join("model/modules.json").is_file());
    assert!(!stderr(&run).contains("labels"), "retrieval has no labels: {}", stderr(&run));

    // A plain BERT folder needs --pooling; with the pooling the sentence
    // folder was saved with, it scores the same.
    let scores = |model: &str, pooling: &[&str]| {
        let json = t.join("scores.json");
        let _ = std::fs::remove_file(&json);
        let args = ["eval", "--task", "retrieval", "--model", model, "--corpus", &corpus, "--queries", &queries];
        let run = ferrotune(&[&args[..], pooling, &["--max-len", "8", "--json", json.to_str().unwrap()]].concat(), "");
        let report: Option<serde_json::Value> =
            std::fs::read_to_string(&json).ok().map(|text| serde_json::from_str(&text).unwrap());
        (run.status.code(), report)
    };
    let plain = base.to_str().unwrap();
    assert_eq!(scores(plain, &[]).0, Some(2));
    let pooled = scores(plain, &["--pooling", "mean", "--normalize", "true"]);
    assert_eq!(pooled.0, Some(0));
    assert!(pooled.1.as_ref().is_some_and(|r| r["mrr@10"].as_f64().is_some()), "{pooled:?}");
    assert_eq!(pooled, scores(st.to_str().unwrap(), &[]));
    let cls = scores(plain, &["--pooling", "cls", "--normalize", "true"]);
    assert_ne!(cls.1, pooled.1, "the pooling flag is used");

    let json = t.join("report.json");
    let eval_args = ["eval", "--task", "retrieval", "--model", o, "--corpus", &corpus, "--queries", &queries];
    let eval = ferrotune(&[&eval_args[..], &["--json", json.to_str().unwrap()]].concat(), "");
    assert!(eval.status.success(), "{}", stderr(&eval));
    let table = String::from_utf8_lossy(&eval.stdout).to_string();
    assert!(table.contains("mrr@10") && table.contains("map@100"), "{table}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((report["queries"].as_u64(), report["corpus"].as_u64()), (Some(15), Some(15)));
    for key in ["accuracy@1", "accuracy@10", "precision@3", "recall@5", "ndcg@10", "mrr@10", "map@100"] {
        let value = report[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&value), "{key}: {report}");
    }

    let repeated = write(&t.join("repeated.tsv"), "id\ttext\na\tfever\na\tcough\n");
    let eval =
        ferrotune(&["eval", "--task", "retrieval", "--model", o, "--corpus", &repeated, "--queries", &queries], "");
    assert_eq!(eval.status.code(), Some(1));
    assert!(stderr(&eval).contains("repeated.tsv:3: id 'a' repeats the one on line 2"), "{}", stderr(&eval));
    let unknown = write(&t.join("unknown.tsv"), "query\trelevant\nfever\tnowhere\n");
    let eval =
        ferrotune(&["eval", "--task", "retrieval", "--model", o, "--corpus", &corpus, "--queries", &unknown], "");
    assert_eq!(eval.status.code(), Some(1));
    assert!(stderr(&eval).contains("unknown.tsv:2: relevant id 'nowhere' is not in the corpus"), "{}", stderr(&eval));
    let mixed = ferrotune(&["eval", "--task", "retrieval", "--model", o, "--data", &corpus], "");
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr(&mixed));
    let bad_pairs = write(&t.join("bad-pairs.tsv"), "query\tanswer\nfever\tcough\n");
    let mut args = vec!["train", "--task", "retrieval", "--model", st.to_str().unwrap(), "--train", &bad_pairs];
    args.extend(["--output", o]);
    let train = ferrotune(&args, "");
    assert_eq!(train.status.code(), Some(1));
    assert!(stderr(&train).contains("bad-pairs.tsv:1: header [\"query\", \"answer\"]: no 'positive' column"));
}
