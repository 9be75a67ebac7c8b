//! The options of counting and detection, shared by `monitor run` and
//! `monitor aggregate`.

use std::path::PathBuf;

use clap::Args;
use ferrotune_monitor::{DetectorSettings, MonitorSettings, TopicRules};

use super::parse_seconds;
use crate::UsageError;

#[derive(Args)]
pub struct CountingArgs {
    /// Topic rules: a TOML table of topic = [keywords or /regular expressions/]. Records are also
    /// counted under their own "topic" and under the overall stream "*".
    #[arg(long)]
    pub topics: Option<PathBuf>,
    /// Window width: 30s, 15m, 1h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_seconds)]
    pub window: i64,
    /// How far behind the latest record a record may arrive and still be counted.
    #[arg(long, default_value = "0s", value_parser = parse_lateness)]
    pub allowed_lateness: i64,
    /// Tail probability below which a window is anomalous.
    #[arg(long, default_value_t = DetectorSettings::default().alpha)]
    pub alpha: f64,
    /// Records a window needs to be tested.
    #[arg(long, default_value_t = DetectorSettings::default().min_count)]
    pub min_count: u64,
    /// Rise of the negative share over the baseline a window needs to alarm.
    #[arg(long, default_value_t = DetectorSettings::default().min_rise)]
    pub min_rise: f64,
    /// Normal windows a topic needs before it is tested.
    #[arg(long, default_value_t = DetectorSettings::default().warmup)]
    pub warmup: u32,
    /// Windows after which a past window weighs half in the baseline.
    #[arg(long, default_value_t = DetectorSettings::default().half_life)]
    pub half_life: f64,
    /// Windows after an alert before another alert of the same kind.
    #[arg(long, default_value_t = DetectorSettings::default().cooldown)]
    pub cooldown: u32,
}

fn parse_lateness(text: &str) -> Result<i64, String> {
    if text.trim() == "0" || text.trim() == "0s" {
        return Ok(0);
    }
    parse_seconds(text)
}

impl CountingArgs {
    /// The settings, checked.
    pub fn settings(&self) -> anyhow::Result<MonitorSettings> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            anyhow::bail!(UsageError::invalid_option("alpha", "must be in (0, 1)"));
        }
        if !(self.half_life > 0.0 && self.half_life.is_finite()) {
            anyhow::bail!(UsageError::invalid_option("half_life", "must be a positive number"));
        }
        let detector = DetectorSettings {
            alpha: self.alpha,
            min_count: self.min_count,
            min_rise: self.min_rise,
            warmup: self.warmup,
            half_life: self.half_life,
            cooldown: self.cooldown,
        };
        Ok(MonitorSettings { width: self.window, lateness: self.allowed_lateness, detector })
    }

    /// The topic rules, if any.
    pub fn topic_rules(&self) -> anyhow::Result<Option<TopicRules>> {
        Ok(self.topics.as_deref().map(TopicRules::load).transpose()?)
    }
}
