//! The HTML page of one run, or of several overlaid.

use std::collections::BTreeSet;
use std::fmt::Write;

use ferrotune_eval::{confusion_svg, escape, ClassReport};
use serde_json::Value;

use super::chart::{line_chart, Series, COLOURS};
use super::RunLog;

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1180px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.charts{display:flex;flex-wrap:wrap;gap:8px}\
.note{color:#666;font-size:12px}";

/// The page of `runs`: one run in full, or several overlaid with a table
/// of their options and best scores.
pub fn report_html(runs: &[RunLog]) -> String {
    let title = match runs {
        [one] => format!("Training run {}", one.name),
        _ => format!("{} training runs", runs.len()),
    };
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         <style>{STYLE}</style></head><body><h1>{0}</h1>",
        escape(&title)
    );
    if runs.len() > 1 {
        html += &comparison_table(runs);
    } else if let Some(run) = runs.first() {
        html += &summary_table(run);
    }
    html += "<h2 id=\"curves\">Training curves</h2><div class=\"charts\">";
    html += &charts(runs);
    html += "</div>";
    if let [run] = runs {
        html += &kept_epoch(run);
        html += &epoch_table(run);
        html += &options_table(run);
    }
    html += "</body></html>";
    html
}

fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e-3 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("<td class=\"n\">{}</td>", n.as_f64().map(number).unwrap_or_default()),
        Value::String(s) => format!("<td>{}</td>", escape(s)),
        Value::Null => "<td></td>".into(),
        other => format!("<td>{}</td>", escape(&other.to_string())),
    }
}

/// Moving mean over `window` values (the first ones over fewer).
fn smoothed(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// Step and epoch charts, one series per run (loss: raw and smoothed for
/// one run).
fn charts(runs: &[RunLog]) -> String {
    let one = runs.len() == 1;
    let series = |i: usize, run: &RunLog, points: Vec<(f64, f64)>, faint: bool| Series {
        name: run.name.clone(),
        colour: colour(i),
        points,
        faint,
        marks: Vec::new(),
    };
    let per_step = |f: fn(&super::StepPoint) -> f64| -> Vec<Series> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| series(i, r, r.steps.iter().map(|s| (s.step as f64, f(s))).collect(), false))
            .collect()
    };
    let mut loss = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let raw: Vec<(f64, f64)> = run.steps.iter().map(|s| (s.step as f64, s.loss)).collect();
        let window = (raw.len() / 50).max(1);
        if one {
            loss.push(series(i, run, raw.clone(), true));
        }
        let mut smooth = series(i, run, smoothed(&raw, window), false);
        smooth.name = format!("{} (mean of {window} steps)", run.name);
        loss.push(smooth);
    }
    let mut dev = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let mut s =
            series(i, run, run.epochs.iter().filter_map(|e| Some((e.epoch as f64, e.dev_score?))).collect(), false);
        if let Some(kept) = run.kept() {
            if let Some(score) = kept.dev_score {
                s.marks.push((kept.epoch as f64, score, format!("kept: epoch {} ({score:.4})", kept.epoch)));
            }
        }
        dev.push(s);
    }
    let epochs_train_loss: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| series(i, r, r.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect(), false))
        .collect();
    let mut out = String::new();
    out += &line_chart("training loss per step", "optimizer step", &loss);
    out += &line_chart("dev score per epoch (the score that selects the model)", "epoch", &dev);
    out += &line_chart("learning rate per step", "optimizer step", &per_step(|s| s.lr));
    out += &line_chart("throughput (model inputs per second)", "optimizer step", &per_step(|s| s.rate));
    out += &line_chart("gradient norm per step (before clipping)", "optimizer step", &per_step(|s| s.grad_norm));
    out += &line_chart("mean training loss per epoch", "epoch", &epochs_train_loss);
    if let [run] = runs {
        out += &dev_metrics_chart(run);
    }
    out
}

/// The dev report's headline numbers per epoch (precision, recall, F1 for
/// entities; accuracy and macro F1 for classes).
fn dev_metrics_chart(run: &RunLog) -> String {
    let picks: &[(&str, &[&str])] = if run.epochs.iter().any(|e| e.dev["micro"].is_object()) {
        &[
            ("micro precision", &["micro", "precision"]),
            ("micro recall", &["micro", "recall"]),
            ("micro F1", &["micro", "f1"]),
        ]
    } else {
        &[("accuracy", &["accuracy"]), ("macro F1", &["macro", "f1"])]
    };
    let series: Vec<Series> = picks
        .iter()
        .enumerate()
        .map(|(i, (name, path))| Series {
            name: name.to_string(),
            colour: colour(i + 1),
            points: run
                .epochs
                .iter()
                .filter_map(|e| Some((e.epoch as f64, path.iter().fold(&e.dev, |v, k| &v[k]).as_f64()?)))
                .collect(),
            faint: false,
            marks: Vec::new(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return String::new();
    }
    line_chart("dev metrics per epoch", "epoch", &series)
}

/// Task, files, data sizes, the kept epoch and the timings of one run.
fn summary_table(run: &RunLog) -> String {
    let data = &run.run["data"];
    let seconds: f64 = run.epochs.iter().map(|e| e.seconds).sum();
    let inputs: f64 = run.epochs.iter().map(|e| e.rate * e.seconds).sum();
    let kept = run.kept();
    let rows: Vec<(&str, Value)> = vec![
        ("task", data["task"].clone()),
        ("model", run.run["model"].clone()),
        ("training file", run.run["train"].clone()),
        ("dev file", run.run["dev"].clone()),
        ("training examples", data["examples"].clone()),
        ("model inputs (NER: windows)", data["model_inputs"].clone()),
        ("longer than max_len", data["long_inputs"].clone()),
        ("labels", data["labels"].clone()),
        ("parameters", data["parameters"].clone()),
        ("trainable parameters", data["trainable"].clone()),
        ("epochs done", run.epochs.len().into()),
        ("kept epoch", kept.map(|e| e.epoch).into()),
        ("kept dev score", kept.and_then(|e| e.dev_score).into()),
        ("training seconds (all epochs)", seconds.into()),
        ("model inputs per second", if seconds > 0.0 { (inputs / seconds).into() } else { Value::Null }),
    ];
    let mut html = String::from("<h2 id=\"summary\">Summary</h2><table>");
    for (name, value) in rows.into_iter().filter(|(_, v)| !v.is_null()) {
        let _ = write!(html, "<tr><th>{}</th>{}</tr>", escape(name), cell(&value));
    }
    html + "</table>"
}

/// One row per run: its best scores and the options that differ.
fn comparison_table(runs: &[RunLog]) -> String {
    let keys: BTreeSet<&String> = runs.iter().filter_map(|r| r.options()).flat_map(|o| o.keys()).collect();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            let values: BTreeSet<String> = runs
                .iter()
                .map(|r| r.options().and_then(|o| o.get(*k)).map_or_else(String::new, |v| v.to_string()))
                .collect();
            values.len() > 1
        })
        .collect();
    let mut html = String::from(
        "<h2 id=\"runs\">Runs</h2><table><tr><th>run</th><th>task</th><th>kept epoch</th><th>kept dev score</th>\
         <th>epochs</th><th>training seconds</th>",
    );
    for k in &differing {
        let _ = write!(html, "<th>{}</th>", escape(k));
    }
    html += "</tr>";
    for (i, run) in runs.iter().enumerate() {
        let kept = run.kept();
        let seconds: f64 = run.epochs.iter().map(|e| e.seconds).sum();
        let _ = write!(
            html,
            "<tr><td><span style=\"color:{}\">&#9632;</span> {}</td>{}{}{}{}{}",
            colour(i),
            escape(&run.name),
            cell(&run.run["data"]["task"]),
            cell(&kept.map(|e| e.epoch).into()),
            cell(&kept.and_then(|e| e.dev_score).into()),
            cell(&run.epochs.len().into()),
            cell(&seconds.into())
        );
        for k in &differing {
            html += &cell(run.options().and_then(|o| o.get(*k)).unwrap_or(&Value::Null));
        }
        html += "</tr>";
    }
    html += "</table>";
    if differing.is_empty() {
        html += "<p class=\"note\">The runs have the same options.</p>";
    }
    html
}

/// The kept epoch's per-type or per-class scores, and its confusion matrix.
fn kept_epoch(run: &RunLog) -> String {
    let Some(kept) = run.kept() else { return String::new() };
    let mut html = format!("<h2 id=\"kept\">Kept epoch {}: dev scores</h2>", kept.epoch);
    for (key, what) in [("per_type", "entity type"), ("per_class", "class")] {
        let Some(rows) = kept.dev[key].as_object() else { continue };
        let _ = write!(
            html,
            "<table class=\"{key}\"><tr><th>{what}</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
        );
        for (name, s) in rows {
            let _ = write!(
                html,
                "<tr><td>{}</td>{}{}{}{}</tr>",
                escape(name),
                cell(&s["precision"]),
                cell(&s["recall"]),
                cell(&s["f1"]),
                cell(&s["support"])
            );
        }
        html += "</table>";
    }
    if let Ok(report) = serde_json::from_value::<ClassReport>(kept.dev.clone()) {
        html += "<div class=\"confusion\">";
        html += &confusion_svg(&report);
        html += "</div>";
    }
    html
}

/// Every epoch: step, losses, dev score, time and throughput.
fn epoch_table(run: &RunLog) -> String {
    let mut html = String::from(
        "<h2 id=\"epochs\">Epochs</h2><table><tr><th>epoch</th><th>last step</th><th>train loss</th>\
         <th>dev score</th><th>seconds</th><th>inputs/s</th></tr>",
    );
    for e in &run.epochs {
        let kept = run.kept().is_some_and(|k| k.epoch == e.epoch);
        let _ = write!(
            html,
            "<tr><td>{}{}</td>{}{}{}{}{}</tr>",
            e.epoch,
            if kept { " (kept)" } else { "" },
            cell(&e.step.into()),
            cell(&e.train_loss.into()),
            cell(&e.dev_score.into()),
            cell(&e.seconds.into()),
            cell(&e.rate.into())
        );
    }
    html + "</table>"
}

/// The options of the run.
fn options_table(run: &RunLog) -> String {
    let Some(options) = run.options() else { return String::new() };
    let mut html = String::from("<h2 id=\"options\">Options</h2><table>");
    for (k, v) in options {
        let _ = write!(html, "<tr><th>{}</th>{}</tr>", escape(k), cell(v));
    }
    html + "</table>"
}
