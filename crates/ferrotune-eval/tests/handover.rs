//! Hand-over metrics against scikit-learn's numbers for the same cases,
//! computed once by scripts/handover_cases.py and stored.

use ferrotune_eval::{auroc, calibrate, coverage_curve};
use serde_json::Value;

fn close(a: f64, b: &Value) {
    let b = b.as_f64().unwrap();
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

fn flags(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect()
}

#[test]
fn handover_metrics_match_sklearn() {
    let cases: Value = serde_json::from_str(include_str!("handover_expected.json")).unwrap();
    for case in cases.as_array().unwrap() {
        let scores: Vec<f32> = case["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let (correct, in_scope) = (flags(&case["correct"]), flags(&case["in_scope"]));
        close(auroc(&scores, &correct).unwrap(), &case["auroc_correct"]);
        close(auroc(&scores, &in_scope).unwrap(), &case["auroc_in_scope"]);
        let curve = coverage_curve(&scores, &correct);
        let want = case["curve"].as_array().unwrap();
        assert_eq!(curve.len(), want.len());
        for (point, want) in curve.iter().zip(want) {
            close(f64::from(point.threshold), &want["threshold"]);
            close(point.coverage, &want["coverage"]);
            close(point.precision, &want["precision"]);
        }
        for (target, want) in case["calibration"].as_object().unwrap() {
            let calibration = calibrate(&scores, &correct, target.parse().unwrap());
            match want.as_f64() {
                Some(_) => {
                    assert!(calibration.reached);
                    close(f64::from(calibration.threshold), want);
                }
                None => assert!(
                    !calibration.reached
                        && calibration.threshold > *scores.iter().max_by(|a, b| a.total_cmp(b)).unwrap()
                ),
            }
        }
    }
}
