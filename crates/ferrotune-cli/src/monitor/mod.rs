//! `ferrotune monitor`: classify a stream of records with a sentiment
//! model, count them in windows per topic and alert when a topic's negative
//! share (or volume) rises beyond its own baseline (`run`); replay a
//! labelled set as a stream with known bursts and score the alerts against
//! them (`simulate`, `score`).

mod aggregate;
mod counting;
mod replay;
mod report;
mod run;
mod sinks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Subcommand};
use ferrotune_monitor::parse_duration;

#[derive(Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Subcommand)]
enum MonitorCommand {
    /// Classify a stream of records {"time", "text", "topic"?, "id"?, "source"?} (JSON lines or CSV), count
    /// it in windows per topic, keep everything in a SQLite store and write alerts as JSON lines.
    Run(Box<run::RunArgs>),
    /// Count the records Redis workers stored: windows, detection and alerts, in one place so that counts are
    /// exact.
    Aggregate(aggregate::AggregateArgs),
    /// Write a store's dashboard: one self-contained HTML page, per topic the negative share over time with
    /// its baseline band, volume bars, alert markers and the texts behind each alert.
    Report(report::ReportArgs),
    /// Build a replay stream from a labelled text file, with negative bursts at known windows.
    Simulate(replay::SimulateArgs),
    /// Score a run's alerts against a replay's bursts: recall, delay, false alerts.
    Score(replay::ScoreArgs),
}

/// Seconds from a duration such as `15m`.
fn parse_seconds(text: &str) -> Result<i64, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

pub fn run(args: MonitorArgs) -> anyhow::Result<()> {
    match args.command {
        MonitorCommand::Run(args) => run::run(*args),
        MonitorCommand::Aggregate(args) => aggregate::run(args),
        MonitorCommand::Report(args) => report::run(args),
        MonitorCommand::Simulate(args) => replay::simulate(args),
        MonitorCommand::Score(args) => replay::score(args),
    }
}

/// A flag set by SIGINT or SIGTERM (a second one kills at once).
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}
