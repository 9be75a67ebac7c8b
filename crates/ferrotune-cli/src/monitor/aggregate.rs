//! `monitor aggregate`: the one place where the records that Redis workers
//! store are counted in windows and tested. One process counts so that
//! counts are exact (each stored record is read once, in commit order, and
//! the read position is committed with the windows it changed) and each
//! topic's baseline and alert episodes have a single writer.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use ferrotune_monitor::{BatchOutcome, Monitor, Store};

use super::counting::CountingArgs;
use super::sinks::{SinkArgs, Sinks};
use super::stop_on_signal;

/// Stored records counted per transaction.
const BATCH_RECORDS: usize = 4096;

/// How often a followed store is checked for new records.
const POLL: Duration = Duration::from_millis(500);

#[derive(Args)]
pub struct AggregateArgs {
    /// The SQLite store the workers write.
    #[arg(long, default_value = "monitor.sqlite")]
    db: PathBuf,
    /// Keep counting as workers store more, until SIGINT or SIGTERM; windows stay open. Without it, the
    /// records stored so far end the stream.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    counting: CountingArgs,
    #[command(flatten)]
    sinks: SinkArgs,
}

pub fn run(args: AggregateArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut monitor = Monitor::open(Store::open(&args.db)?, args.counting.settings()?, args.counting.topic_rules()?)?;
    let mut sinks = Sinks::open(&args.sinks, monitor.store())?;
    let stop = if args.follow { Some(stop_on_signal()?) } else { None };
    let mut total = BatchOutcome::default();
    loop {
        let outcome = monitor.aggregate(BATCH_RECORDS)?;
        let read = outcome.read;
        sinks.metrics.add_records_in(read as u64);
        sinks.write(&outcome, monitor.store())?;
        total.add(outcome);
        if read > 0 {
            continue;
        }
        match &stop {
            Some(stop) if !stop.load(Ordering::Relaxed) => {
                sinks.record_deliveries(monitor.store())?;
                std::thread::sleep(POLL);
            }
            Some(_) => break,
            None => {
                let outcome = monitor.end()?;
                sinks.write(&outcome, monitor.store())?;
                total.add(outcome);
                break;
            }
        }
    }
    let (rejected, alerts) = (sinks.rejects.written, sinks.alerts.written);
    sinks.finish(monitor.store())?;
    eprintln!(
        "{} stored records counted, {} rejected; {} final windows, {} alerts and resolutions, in {:.1} s",
        total.read,
        rejected,
        total.final_windows,
        alerts,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
