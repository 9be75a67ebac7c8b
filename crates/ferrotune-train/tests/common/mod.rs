//! Helpers shared by the training tests.

use std::path::Path;

/// The loss of every step, from a run's `metrics.jsonl`.
pub fn step_losses(output: &Path) -> Vec<f64> {
    std::fs::read_to_string(output.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}
