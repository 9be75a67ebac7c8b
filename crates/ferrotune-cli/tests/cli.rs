//! The `ferrotune` binary end to end on a tiny random model: train (flags and
//! a TOML config), eval with --json, predict on text and JSONL, and clear
//! errors with a non-zero exit for bad input.

mod common;

use std::path::Path;

use common::{ferrotune, json_lines, stderr};

const WORDS: [&str; 10] = ["the", "patient", "has", "fever", "and", "cough", "no", "signs", "of", "asthma"];

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const TRAIN: &str = "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\n\
no\tO\nsigns\tO\nof\tO\nasthma\tB-Disease\n\n";

#[test]
fn train_eval_predict_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 2).unwrap();
    let data = t.join("train.tsv");
    write(&data, &TRAIN.repeat(8));
    let out = t.join("out");
    let config = t.join("run.toml");
    write(
        &config,
        &format!(
            "model = {:?}\ntrain = {:?}\noutput = {:?}\nepochs = 1\nbatch_size = 4\nlr = 0.005\nmax_len = 16\nthreads = 1\n",
            base, data, out
        ),
    );
    // The flag --epochs 2 wins over the file's epochs = 1.
    let o = ferrotune(
        &["train", "--config", config.to_str().unwrap(), "--epochs", "2", "--dev", data.to_str().unwrap()],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"type\":\"epoch\"")).count(), 2);

    let json = t.join("report.json");
    let o = ferrotune(
        &["eval", "--model", out.to_str().unwrap(), "--data", data.to_str().unwrap(), "--json", json.to_str().unwrap()],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("micro avg"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["micro", "macro", "weighted"] {
        for field in ["precision", "recall", "f1", "support"] {
            assert!(report[key][field].is_number(), "{key}.{field}");
        }
    }
    assert!(report["per_type"]["Disease"]["f1"].is_number());
    assert_eq!(report["sentences"], 16);
    assert_eq!(report["tokens"], 80);

    // JSONL by name (issue 13: never guessed from a line's first character).
    let input = "{\"text\": \"the patient has fever\"}\n{\"tokens\": [\"no\", \"signs\", \"of\", \"asthma\"]}\n\n{\"text\": \"cough , fever\"}\n";
    let o = ferrotune(&["predict", "--model", out.to_str().unwrap(), "--format", "jsonl"], input);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 4, "one output line per input line");
    assert_eq!(lines[1]["text"], "no signs of asthma");
    assert_eq!(lines[1]["tokens"].as_array().unwrap().len(), 4);
    assert_eq!(lines[3]["tokens"], serde_json::json!(["cough", ",", "fever"]));
    for line in &lines {
        assert_eq!(line["tags"].as_array().unwrap().len(), line["tokens"].as_array().unwrap().len());
        let text: Vec<char> = line["text"].as_str().unwrap().chars().collect();
        for e in line["entities"].as_array().unwrap() {
            let (s, e2) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
            assert_eq!(text[s..e2].iter().collect::<String>(), e["text"].as_str().unwrap());
        }
    }

    // Bad input: a clear error naming file and line, a non-zero exit, no panic.
    let bad = t.join("bad.tsv");
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"the\tO\nbroken\n".to_vec(), "train", "bad.tsv:2: expected a token and a tag"),
        (b"the\tO\n\xffx\tO\n".to_vec(), "train", "bad.tsv:2: invalid UTF-8"),
        (b"".to_vec(), "train", "no sentences found"),
        (b"the\tDISEASE\n".to_vec(), "train", "bad.tsv:1: tag 'DISEASE' is not IOB2"),
        (b"the\tO\nfever\tB-Chemical\n".to_vec(), "eval", "bad.tsv:2: tag 'B-Chemical' is unknown to the model"),
    ];
    for (content, command, expected) in cases {
        std::fs::write(&bad, content).unwrap();
        let o = match command {
            "train" => ferrotune(
                &[
                    "train",
                    "--model",
                    base.to_str().unwrap(),
                    "--train",
                    bad.to_str().unwrap(),
                    "--output",
                    t.join("x").to_str().unwrap(),
                ],
                "",
            ),
            _ => ferrotune(&["eval", "--model", out.to_str().unwrap(), "--data", bad.to_str().unwrap()], ""),
        };
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(expected), "{err:?} should contain {expected:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = ferrotune(
        &["predict", "--model", out.to_str().unwrap(), "--format", "jsonl"],
        "{\"text\": \"fine\"}\n{\"text\": 5}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<stdin>:2: \"text\" must be a string"), "{}", stderr(&o));
    let o = ferrotune(&["eval", "--model", base.to_str().unwrap(), "--data", data.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a fine-tuned model"), "{}", stderr(&o));
    let o = ferrotune(&["eval", "--model", t.join("missing").to_str().unwrap(), "--data", data.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing/config.json"), "{}", stderr(&o));
}

/// Issue 13, item 6: standard input is text unless `--format` says
/// otherwise, so a line starting with `{` is a text, not a failed JSON parse.
#[test]
fn predict_reads_formats_by_name() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 2).unwrap();
    let ner = t.path().join("ner");
    let labels: Vec<String> = ["O", "B-Disease", "I-Disease"].map(String::from).to_vec();
    let head = ferrotune_model::TokenHead::For { labels: &labels, seed: 1 };
    ferrotune_model::TokenClassifier::load(&base, head, &candle_core::Device::Cpu)
        .unwrap()
        .save_pretrained(&ner)
        .unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &ner).unwrap();
    let model = ner.to_str().unwrap();
    let o = ferrotune(&["predict", "--model", model, "--threads", "1"], "{BRCA1} mutations cause cancer\nfever\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines[0]["text"], "{BRCA1} mutations cause cancer");
    assert_eq!(lines.len(), 2);
    let o = ferrotune(&["predict", "--model", model, "--format", "conll"], "fever\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ferrotune(&["predict", "--model", model, "--format", "xml"], "fever\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
