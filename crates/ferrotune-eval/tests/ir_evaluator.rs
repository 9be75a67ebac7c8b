//! Retrieval metrics against sentence-transformers'
//! `InformationRetrievalEvaluator` on the same score matrices (exact ties,
//! several relevant ids, a relevant id outside the corpus, a query with
//! none), computed once by scripts/ir_reference.py and stored.

use std::collections::BTreeSet;

use ferrotune_eval::RetrievalReport;
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

#[test]
fn metrics_match_the_information_retrieval_evaluator() {
    let cases: Value = serde_json::from_str(include_str!("ir_expected.json")).unwrap();
    for case in cases.as_array().unwrap() {
        let corpus_ids = strings(&case["corpus_ids"]);
        let relevant: Vec<BTreeSet<String>> =
            case["relevant"].as_array().unwrap().iter().map(|r| strings(r).into_iter().collect()).collect();
        let rows = case["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<f32>>());
        let report = RetrievalReport::compute(rows, &corpus_ids, &relevant);
        assert_eq!(report.queries as u64, case["queries"].as_u64().unwrap());
        let expected = case["expected"].as_object().unwrap();
        let metrics = report.metrics();
        assert_eq!(metrics.len(), expected.len());
        for (name, value) in metrics {
            let want = expected[&name].as_f64().unwrap();
            assert!((value - want).abs() < 1e-12, "{name}: {value} vs {want}");
        }
    }
}
