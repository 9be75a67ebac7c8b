//! Text-level metrics against scikit-learn's numbers for the same cases,
//! computed once by scripts/sklearn_cases.py and stored.

use ferrotune_eval::{ClassReport, MultilabelReport, RegressionReport, Scores};
use serde_json::Value;

fn cases() -> Value {
    serde_json::from_str(include_str!("sklearn_expected.json")).unwrap()
}

fn close(a: f64, b: &Value) {
    let b = b.as_f64().unwrap();
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

fn ids(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

fn prf(s: &Scores, v: &Value) {
    close(s.precision, &v[0]);
    close(s.recall, &v[1]);
    close(s.f1, &v[2]);
}

#[test]
fn classification_matches_sklearn() {
    for case in cases()["classify"].as_array().unwrap() {
        let r = ClassReport::compute(&strings(&case["labels"]), &ids(&case["truth"]), &ids(&case["pred"]));
        close(r.accuracy, &case["accuracy"]);
        prf(&r.macro_avg, &case["macro"]);
        prf(&r.weighted, &case["weighted"]);
        assert_eq!(r.classes, strings(&case["classes"]));
        for (name, row) in case["per_class"].as_object().unwrap() {
            prf(&r.per_class[name], row);
            assert_eq!(r.per_class[name].support as u64, row[3].as_u64().unwrap());
        }
        let confusion: Vec<Vec<usize>> = case["confusion"].as_array().unwrap().iter().map(ids).collect();
        assert_eq!(r.confusion, confusion);
        assert!(r.to_table().contains("confusion matrix"));
    }
}

#[test]
fn multilabel_matches_sklearn() {
    for case in cases()["multilabel"].as_array().unwrap() {
        let sets = |v: &Value| v.as_array().unwrap().iter().map(ids).collect::<Vec<_>>();
        let r = MultilabelReport::compute(&strings(&case["labels"]), &sets(&case["truth"]), &sets(&case["pred"]));
        close(r.subset_accuracy, &case["subset_accuracy"]);
        prf(&r.micro, &case["micro"]);
        prf(&r.macro_avg, &case["macro"]);
        prf(&r.weighted, &case["weighted"]);
    }
}

#[test]
fn regression_matches_sklearn_and_scipy() {
    for case in cases()["regression"].as_array().unwrap() {
        let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
        let r = RegressionReport::compute(&floats(&case["truth"]), &floats(&case["pred"]));
        close(r.mse, &case["mse"]);
        close(r.mae, &case["mae"]);
        close(r.pearson, &case["pearson"]);
        close(r.spearman, &case["spearman"]);
    }
}
