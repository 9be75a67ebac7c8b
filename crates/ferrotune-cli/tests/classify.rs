//! `ferrotune train/eval/predict --task classify` end to end on a tiny
//! random model: the task is saved and read back (eval and predict need no
//! --task), the report has accuracy and macro/weighted keys, the confusion
//! matrix is drawn, and bad labels are named by file and line.

mod common;

use common::{ferrotune, json_lines, stderr};

const WORDS: [&str; 8] = ["good", "great", "bad", "awful", "profit", "loss", "rose", "fell"];

#[test]
fn classify_train_eval_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 4).unwrap();
    let data = t.join("train.csv");
    let rows = "profit rose,positive\nloss fell,negative\ngreat profit,positive\n\"awful, bad loss\",negative\n";
    std::fs::write(&data, format!("text,label\n{}", rows.repeat(6))).unwrap();
    let out = t.join("out");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let run = ferrotune(
        &[
            "train",
            "--task",
            "classify",
            "--model",
            base.to_str().unwrap(),
            "--train",
            d,
            "--dev",
            d,
            "--output",
            o,
            "--epochs",
            "10",
            "--batch-size",
            "4",
            "--lr",
            "0.01",
            "--max-len",
            "16",
            "--threads",
            "1",
            "--patience",
            "0",
        ],
        "",
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["problem_type"], "single_label_classification");

    let (json, svg) = (t.join("report.json"), t.join("confusion.svg"));
    let eval = ferrotune(
        &["eval", "--model", o, "--data", d, "--json", json.to_str().unwrap(), "--plot", svg.to_str().unwrap()],
        "",
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let table = String::from_utf8_lossy(&eval.stdout).to_string();
    assert!(table.contains("macro avg") && table.contains("confusion matrix"), "{table}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["accuracy"].as_f64().unwrap() > 0.99, "{report}");
    assert!(report["macro"]["f1"].as_f64().is_some() && report["weighted"]["f1"].as_f64().is_some());
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let input = "{\"text\": \"profit rose\"}\n{\"text\": \"bad loss\"}\n";
    let predict = ferrotune(&["predict", "--model", o, "--format", "jsonl"], input);
    assert!(predict.status.success(), "{}", stderr(&predict));
    let lines = json_lines(&predict);
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["text"].as_str(), lines[0]["label"].as_str()), (Some("profit rose"), Some("positive")));
    assert_eq!(lines[1]["label"], "negative");
    let p = &lines[1]["scores"];
    let sum = p["negative"].as_f64().unwrap() + p["positive"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-5 && lines[1]["score"] == p["negative"]);

    let bad = t.join("bad.tsv");
    std::fs::write(&bad, "text\tlabel\nprofit rose\tpositive\nloss fell\tneutral\n").unwrap();
    let eval = ferrotune(&["eval", "--model", o, "--data", bad.to_str().unwrap()], "");
    assert!(!eval.status.success());
    assert!(stderr(&eval).contains("bad.tsv:3: unknown label 'neutral'"), "{}", stderr(&eval));
}
