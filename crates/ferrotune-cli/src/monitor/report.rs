//! `monitor report`: the dashboard of a store, one self-contained HTML page.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_monitor::{parse_time, Dashboard, Store, TopicSeries, WindowPoint};

#[derive(Args)]
pub struct ReportArgs {
    /// The monitor's SQLite store.
    #[arg(long, default_value = "monitor.sqlite")]
    db: PathBuf,
    /// The page to write.
    #[arg(long, default_value = "dashboard.html")]
    output: PathBuf,
    /// First time shown: RFC 3339 or Unix seconds [default: the first window].
    #[arg(long, value_parser = parse_instant)]
    from: Option<i64>,
    /// Time after the last one shown [default: after the last window].
    #[arg(long, value_parser = parse_instant)]
    to: Option<i64>,
    /// Topics shown (repeat the flag) [default: every topic].
    #[arg(long = "topic")]
    topics: Vec<String>,
}

fn parse_instant(text: &str) -> Result<i64, String> {
    let value = match text.parse::<f64>() {
        Ok(seconds) => serde_json::json!(seconds),
        Err(_) => serde_json::Value::String(text.to_string()),
    };
    parse_time(&value)
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if !args.db.exists() {
        anyhow::bail!("{}: no such store (run `ferrotune monitor run --db` first)", args.db.display());
    }
    let store = Store::open(&args.db)?;
    let (from, to) = (args.from.unwrap_or(i64::MIN), args.to.unwrap_or(i64::MAX));
    let windows = store.windows(&args.topics, from, to)?;
    let alerts = store.alerts(0, None, None)?;
    let mut topics: Vec<TopicSeries> = Vec::new();
    for stored in windows {
        let w = stored.window;
        if topics.last().is_none_or(|t| t.topic != w.topic) {
            topics.push(TopicSeries { topic: w.topic.clone(), windows: Vec::new(), alerts: Vec::new() });
        }
        let series = topics.last_mut().expect("pushed above");
        series.windows.push(WindowPoint {
            start: w.start,
            end: w.end,
            count: w.count,
            negatives: w.negatives,
            baseline_share: stored.baseline_share,
            baseline_sd: stored.baseline_sd,
        });
    }
    for stored in alerts {
        let alert = stored.alert;
        let shown = alert.window_end > from && alert.window_start < to;
        if let Some(series) = topics.iter_mut().find(|t| t.topic == alert.topic).filter(|_| shown) {
            series.alerts.push(alert);
        }
    }
    let title = format!("ferrotune monitor: {}", args.db.display());
    let generated_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let dashboard = Dashboard { title, generated_at, topics };
    ferrotune_data::atomic::write_bytes_atomic(&args.output, dashboard.to_html().as_bytes())
        .with_context(|| format!("writing {}", args.output.display()))?;
    let (windows, alerts): (usize, usize) =
        dashboard.topics.iter().fold((0, 0), |(w, a), t| (w + t.windows.len(), a + t.alerts.len()));
    eprintln!(
        "{}: {} topics, {windows} windows, {alerts} alerts and resolutions",
        args.output.display(),
        dashboard.topics.len()
    );
    Ok(())
}
