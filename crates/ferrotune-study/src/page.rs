//! The study page: one self-contained HTML page (inline CSS and SVG) with
//! the score of every trial, the pruned ones, each trial's dev score per
//! epoch, each option against the score, and the table of trials.

use std::fmt::Write;

use ferrotune_eval::escape;
use ferrotune_train::report::chart::{line_chart, scatter_chart, Dots, Series, XScale, COLOURS};
use serde_json::Value;

use crate::{Param, PrunerConfig, SamplerConfig, Study, Trial, TrialState};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1180px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.charts{display:flex;flex-wrap:wrap;gap:8px}\
tr.best td{font-weight:bold}";

/// A value as tables show it: floats to four significant digits.
pub(crate) fn short(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
                format!("{x:.3e}")
            } else {
                let text = format!("{x:.4}");
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every trial as a tab-separated table: number, state, epochs, the score
/// it shows, then each option.
pub fn trials_tsv(study: &Study) -> String {
    let keys: Vec<&String> = study.config().space.keys().collect();
    let mut text = String::from("trial\tstate\tepochs\tdev_score");
    for key in &keys {
        let _ = write!(text, "\t{key}");
    }
    text.push('\n');
    for trial in study.trials() {
        let score = trial.shown_score().map_or(String::new(), |s| format!("{s:.4}"));
        let _ = write!(text, "{}\t{}\t{}\t{score}", trial.number, trial.state.name(), trial.scores.len());
        for key in &keys {
            let _ = write!(text, "\t{}", trial.params.get(*key).map_or(String::new(), |v| v.to_string()));
        }
        text.push('\n');
    }
    text
}

/// The study's page.
pub fn study_page(study: &Study) -> String {
    let config = study.config();
    let name = config
        .output
        .as_deref()
        .and_then(|p| p.file_name())
        .map_or("study".into(), |n| n.to_string_lossy().into_owned());
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Study {0}</title>\
         <style>{STYLE}</style></head><body><h1>Study {0}</h1>",
        escape(&name)
    );
    html += &summary(study);
    html += "<h2 id=\"trials-chart\">Trials</h2><div class=\"charts\">";
    let by_state =
        |state: TrialState, name: &str, colour: &'static str, hollow: bool, x: &dyn Fn(&Trial) -> Option<f64>| Dots {
            name: name.into(),
            colour,
            hollow,
            points: study
                .trials()
                .iter()
                .filter(|t| t.state == state)
                .filter_map(|t| {
                    let tip =
                        format!("trial {} ({:?}, {} epochs): {}", t.number, t.state, t.scores.len(), t.options_text());
                    Some((x(t)?, t.shown_score()?, tip))
                })
                .collect(),
        };
    let number = |t: &Trial| Some(t.number as f64);
    let groups = |x: &dyn Fn(&Trial) -> Option<f64>| {
        [
            by_state(TrialState::Complete, "complete", COLOURS[0], false, x),
            by_state(TrialState::Pruned, "pruned (last score)", COLOURS[1], true, x),
        ]
    };
    let trials = (0.0, config.trials.max(study.trials().len()).saturating_sub(1) as f64);
    html += &scatter_chart("Dev score per trial", "trial", &XScale::Linear, Some(trials), &groups(&number));
    let best = study.best().map(|t| t.number);
    let series: Vec<Series> = study
        .trials()
        .iter()
        .filter(|t| !t.scores.is_empty())
        .map(|t| Series {
            name: format!("trial {}", t.number),
            colour: if Some(t.number) == best {
                COLOURS[2]
            } else if t.state == TrialState::Pruned {
                COLOURS[1]
            } else {
                COLOURS[0]
            },
            points: t.scores.iter().map(|&(e, s)| (e as f64, s)).collect(),
            faint: Some(t.number) != best,
            marks: if Some(t.number) == best {
                t.scores
                    .iter()
                    .filter(|&&(_, s)| Some(s) == t.value())
                    .map(|&(e, s)| (e as f64, s, format!("best: trial {}", t.number)))
                    .take(1)
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    html += &line_chart("Dev score per epoch (best trial in green, pruned in red)", "epoch", &series);
    html += "</div><h2 id=\"options\">Each option against the score</h2><div class=\"charts\">";
    for (key, param) in &config.space {
        let range = match *param {
            Param::Float { low, high, .. } => Some((low, high)),
            Param::Int { low, high, .. } => Some((low as f64, high as f64)),
            Param::Categorical { .. } => None,
        };
        let scale = match param {
            Param::Float { log: true, .. } | Param::Int { log: true, .. } => XScale::Log,
            Param::Float { .. } | Param::Int { .. } => XScale::Linear,
            Param::Categorical { values } => XScale::Categories(values.iter().map(short).collect()),
        };
        // Categories sit at their index; numbers at their value.
        let x = |t: &Trial| {
            let v = t.params.get(key)?;
            match param {
                Param::Categorical { values } => values.iter().position(|c| c == v).map(|i| i as f64),
                _ => v.as_f64(),
            }
        };
        html += &scatter_chart(key, key, &scale, range, &groups(&x));
    }
    html += "</div>";
    html += &trial_table(study);
    html += "</body></html>";
    html
}

fn summary(study: &Study) -> String {
    let config = study.config();
    let count = |s: TrialState| study.trials().iter().filter(|t| t.state == s).count();
    let (done, budget) = study.epochs();
    let share = if budget > 0 { 100.0 * done as f64 / budget as f64 } else { 0.0 };
    let sampler = match config.sampler {
        SamplerConfig::Random => "random".to_string(),
        SamplerConfig::Tpe { startup_trials, candidates } => {
            format!("TPE ({startup_trials} random start-up trials, {candidates} candidates)")
        }
    };
    let pruner = match config.pruner {
        PrunerConfig::None => "none".to_string(),
        PrunerConfig::Median { startup_trials, warmup_epochs } => {
            format!("median ({startup_trials} start-up trials, {warmup_epochs} warm-up epochs)")
        }
        PrunerConfig::Asha { min_epochs, reduction_factor, min_early_stopping_rate } => format!(
            "asynchronous successive halving (first rung at epoch {min_epochs}, reduction factor {reduction_factor}, \
             early-stopping rate {min_early_stopping_rate})"
        ),
    };
    let mut rows = vec![
        ("trials", format!("{} of {}", study.trials().len(), config.trials)),
        (
            "complete / pruned / failed / running",
            format!(
                "{} / {} / {} / {}",
                count(TrialState::Complete),
                count(TrialState::Pruned),
                count(TrialState::Failed),
                count(TrialState::Running)
            ),
        ),
        ("epochs trained", format!("{done} of {budget} ({share:.0}%)")),
        ("sampler", sampler),
        ("pruner", pruner),
        ("seed", config.seed.to_string()),
    ];
    if let Some(best) = study.best() {
        rows.push(("best trial", format!("{} (dev score {:.4})", best.number, best.value().unwrap_or(f64::NAN))));
        rows.push(("its options", best.options_text()));
    }
    let mut html = String::from("<table class=\"summary\">");
    for (k, v) in rows {
        let _ = write!(html, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
    }
    html + "</table>"
}

fn trial_table(study: &Study) -> String {
    let keys: Vec<&String> = study.config().space.keys().collect();
    let mut html = String::from("<h2 id=\"table\">All trials</h2><table class=\"trials\"><tr><th>trial</th><th>state</th><th>epochs</th><th>dev score</th>");
    for key in &keys {
        let _ = write!(html, "<th>{}</th>", escape(key));
    }
    html += "<th>note</th></tr>";
    let best = study.best().map(|t| t.number);
    for t in study.trials() {
        let class = if Some(t.number) == best { " class=\"best\"" } else { "" };
        let score = t.shown_score().map_or(String::new(), |s| format!("{s:.4}"));
        let _ = write!(
            html,
            "<tr{class}><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{} of {}</td><td class=\"n\">{score}</td>",
            t.number,
            t.state.name(),
            t.scores.len(),
            t.max_epochs
        );
        for key in &keys {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td>",
                t.params.get(*key).map(short).map(|s| escape(&s)).unwrap_or_default()
            );
        }
        let _ = write!(html, "<td>{}</td></tr>", escape(t.message.as_deref().unwrap_or_default()));
    }
    html + "</table>"
}
