//! Detection on final windows: each topic against its own baseline.
//!
//! The test. A topic's baseline is an exponentially weighted mean `m` and
//! variance `v` of the negative shares of its past normal windows (and a
//! weighted mean `λ` of its volumes). The share of a window of `n` records
//! with `k` negatives is anomalous when
//! - `n >= min_count`, the baseline has seen `warmup` windows,
//! - `k/n - m >= min_rise`, and
//! - `P(X >= k) < alpha` for `X ~ BetaBinomial(n, a, b)`, the Beta with
//!   mean `m` and the variance of `v` left after the binomial noise of a
//!   window of average size (`m(1-m)/n̄`): with no such excess it is the
//!   binomial tail `P(Binomial(n, m) >= k)`.
//!
//! So 3 negatives out of 4 never alarm (too few records, and the tail is
//! 0.08 against a 30% baseline), while 60 out of 100 against 30% do (the
//! tail is about 1e-9). The volume is anomalous when `n >= min_count`,
//! `n >= 2λ` and `P(Poisson(λ) >= n) < alpha`. Anomalous windows do not
//! update the baseline. One alert is raised per episode; a repeat waits
//! until the episode is resolved (a later normal window, which emits a
//! resolution event) and `cooldown` windows have passed since the last
//! alert of that kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::{beta_binomial_tail, binomial_tail, poisson_tail};
use crate::Window;

/// The detector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectorSettings {
    /// Tail probability below which a window is anomalous.
    pub alpha: f64,
    /// Records a window needs to be tested.
    pub min_count: u64,
    /// Rise of the negative share over the baseline a window needs.
    pub min_rise: f64,
    /// Normal windows a baseline needs before its topic is tested.
    pub warmup: u32,
    /// Windows after which a past window weighs half in the baseline.
    pub half_life: f64,
    /// Windows after an alert before another of the same kind.
    pub cooldown: u32,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self { alpha: 1e-2, min_count: 30, min_rise: 0.1, warmup: 3, half_life: 24.0, cooldown: 3 }
    }
}

/// A topic's normal level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Normal windows seen with at least `min_count` records.
    pub windows: u32,
    /// Weighted mean of their negative shares.
    pub share_mean: f64,
    /// Weighted variance of their negative shares.
    pub share_variance: f64,
    /// Windows seen for the volume.
    pub volume_windows: u32,
    /// Weighted mean of the volume (records per window).
    pub volume_mean: f64,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The share of negative records rose.
    NegativeShare,
    /// The number of records rose.
    Volume,
}

/// How far out of the ordinary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Tail probability below `alpha`.
    Warning,
    /// Below `alpha²`.
    Critical,
    /// A resolution event.
    Resolved,
}

/// An alert, or the resolution of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// Warning or critical; `resolved` when the topic is back to normal.
    pub severity: Severity,
    /// The topic.
    pub topic: String,
    /// The window (Unix seconds).
    pub window_start: i64,
    /// Its end.
    pub window_end: i64,
    /// Records in the window.
    pub count: u64,
    /// Negative records in it.
    pub negatives: u64,
    /// Their share.
    pub observed_share: f64,
    /// The baseline share.
    pub baseline_share: f64,
    /// The baseline volume.
    pub baseline_count: f64,
    /// The tail probability of the window under the baseline.
    pub p_value: f64,
    /// The most negative texts of the window.
    pub texts: Vec<String>,
}

/// An alert not yet resolved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Episode {
    active: bool,
    last_alert_start: i64,
}

/// Baselines of every topic and their open alerts. Serialisable, so that a
/// restarted monitor continues where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    settings: DetectorSettings,
    baselines: BTreeMap<String, Baseline>,
    episodes: BTreeMap<String, BTreeMap<AlertKind, Episode>>,
}

/// The test of one window for one kind.
struct Verdict {
    anomalous: bool,
    /// Whether the window could be tested (else it changes no episode).
    tested: bool,
    p_value: f64,
}

impl Detector {
    /// A detector with no history.
    pub fn new(settings: DetectorSettings) -> Self {
        Self { settings, baselines: BTreeMap::new(), episodes: BTreeMap::new() }
    }

    /// The baseline of `topic`, if it has one.
    pub fn baseline(&self, topic: &str) -> Option<&Baseline> {
        self.baselines.get(topic)
    }

    /// Tests a final window (each topic's windows in time order) and
    /// returns the alerts and resolutions it causes.
    pub fn observe(&mut self, window: &Window) -> Vec<Alert> {
        let s = self.settings;
        let baseline = self.baselines.get(&window.topic).copied().unwrap_or_default();
        let share = self.share_verdict(window, &baseline);
        let volume = self.volume_verdict(window, &baseline);
        let mut alerts = Vec::new();
        for (kind, verdict) in [(AlertKind::NegativeShare, &share), (AlertKind::Volume, &volume)] {
            if let Some(alert) = self.update_episode(window, &baseline, kind, verdict) {
                alerts.push(alert);
            }
        }
        let weight = 1.0 - 0.5f64.powf(1.0 / s.half_life);
        let b = self.baselines.entry(window.topic.clone()).or_default();
        if !share.anomalous && window.count >= s.min_count {
            ewma(&mut b.share_mean, &mut b.share_variance, b.windows, window.negative_share(), weight);
            b.windows += 1;
        }
        if !volume.anomalous {
            let mut unused = 0.0;
            ewma(&mut b.volume_mean, &mut unused, b.volume_windows, window.count as f64, weight);
            b.volume_windows += 1;
        }
        alerts
    }

    fn share_verdict(&self, window: &Window, b: &Baseline) -> Verdict {
        let s = self.settings;
        if window.count < s.min_count || b.windows < s.warmup {
            return Verdict { anomalous: false, tested: false, p_value: 1.0 };
        }
        let m = b.share_mean.clamp(1e-3, 1.0 - 1e-3);
        let average_count = b.volume_mean.max(1.0);
        let excess = b.share_variance - m * (1.0 - m) / average_count;
        let (k, n) = (window.negatives, window.count);
        let p_value = if excess > 1e-9 {
            let concentration = (m * (1.0 - m) / excess - 1.0).max(1e-3);
            beta_binomial_tail(k, n, m * concentration, (1.0 - m) * concentration)
        } else {
            binomial_tail(k, n, m)
        };
        let anomalous = p_value < s.alpha && window.negative_share() - b.share_mean >= s.min_rise;
        Verdict { anomalous, tested: true, p_value }
    }

    fn volume_verdict(&self, window: &Window, b: &Baseline) -> Verdict {
        let s = self.settings;
        if window.count < s.min_count || b.volume_windows < s.warmup {
            return Verdict { anomalous: false, tested: false, p_value: 1.0 };
        }
        let lambda = b.volume_mean.max(1.0);
        let p_value = poisson_tail(window.count, lambda);
        let anomalous = p_value < s.alpha && window.count as f64 >= 2.0 * lambda;
        Verdict { anomalous, tested: true, p_value }
    }

    fn update_episode(&mut self, window: &Window, b: &Baseline, kind: AlertKind, v: &Verdict) -> Option<Alert> {
        let s = self.settings;
        let episodes = self.episodes.entry(window.topic.clone()).or_default();
        let alert = |severity| Alert {
            kind,
            severity,
            topic: window.topic.clone(),
            window_start: window.start,
            window_end: window.end,
            count: window.count,
            negatives: window.negatives,
            observed_share: window.negative_share(),
            baseline_share: b.share_mean,
            baseline_count: b.volume_mean,
            p_value: v.p_value,
            texts: window.most_negative.iter().map(|(_, t)| t.clone()).collect(),
        };
        let width = window.end - window.start;
        match episodes.get_mut(&kind) {
            Some(e) if e.active && v.tested && !v.anomalous => {
                e.active = false;
                Some(alert(Severity::Resolved))
            }
            Some(e) if e.active => None,
            Some(e) if v.anomalous && window.start - e.last_alert_start < i64::from(s.cooldown) * width => None,
            _ if v.anomalous => {
                episodes.insert(kind, Episode { active: true, last_alert_start: window.start });
                let critical = v.p_value < s.alpha * s.alpha;
                Some(alert(if critical { Severity::Critical } else { Severity::Warning }))
            }
            _ => None,
        }
    }
}

/// One step of an exponentially weighted mean and variance. The first
/// values weigh as in a plain mean (weight `1/(seen+1)` until `weight` is
/// larger), so that the first windows set the baseline together rather
/// than the very first alone.
fn ewma(mean: &mut f64, variance: &mut f64, seen: u32, x: f64, weight: f64) {
    let weight = weight.max(1.0 / (f64::from(seen) + 1.0));
    let diff = x - *mean;
    let step = weight * diff;
    *mean += step;
    *variance = (1.0 - weight) * (*variance + diff * step);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(topic: &str, index: i64, count: u64, negatives: u64) -> Window {
        let mut labels = BTreeMap::new();
        labels.insert("negative".to_string(), negatives);
        labels.insert("neutral".to_string(), count - negatives);
        Window {
            topic: topic.into(),
            start: index * 3600,
            end: (index + 1) * 3600,
            count,
            negatives,
            labels,
            negative_score_sum: negatives as f64,
            most_negative: vec![(0.99, format!("worst of {index}"))],
        }
    }

    fn run(detector: &mut Detector, topic: &str, windows: &[(u64, u64)]) -> Vec<(i64, Severity, AlertKind)> {
        let mut out = Vec::new();
        for (i, &(count, negatives)) in windows.iter().enumerate() {
            for a in detector.observe(&window(topic, i as i64, count, negatives)) {
                out.push((a.window_start / 3600, a.severity, a.kind));
            }
        }
        out
    }

    #[test]
    fn volume_is_accounted_for() {
        let normal = [(100, 30); 10];
        // 3 of 4 negative: too few records to alarm, whatever the share.
        let mut d = Detector::new(DetectorSettings::default());
        assert!(run(&mut d, "a", &[&normal[..], &[(4, 3)]].concat()).is_empty());
        let mut lenient = Detector::new(DetectorSettings { min_count: 1, ..Default::default() });
        assert!(run(&mut lenient, "a", &[&normal[..], &[(4, 3)]].concat()).is_empty(), "p = 0.08");
        // 60 of 100 against 30%: alarms, critical, with the window's texts.
        let mut d = Detector::new(DetectorSettings::default());
        let alerts = run(&mut d, "a", &[&normal[..], &[(100, 60)]].concat());
        assert_eq!(alerts, [(10, Severity::Critical, AlertKind::NegativeShare)]);
    }

    #[test]
    fn one_alert_per_episode_then_a_resolution_and_a_cooldown() {
        let mut d = Detector::new(DetectorSettings::default());
        let mut stream = vec![(100, 30); 6];
        stream.extend([(100, 70), (100, 75), (100, 72)]); // one episode, three windows
        stream.extend([(100, 31), (100, 29)]); // resolved at window 9
        stream.push((100, 70)); // window 11: 5 windows after the last alert
        let alerts = run(&mut d, "a", &stream);
        assert_eq!(
            alerts,
            [
                (6, Severity::Critical, AlertKind::NegativeShare),
                (9, Severity::Resolved, AlertKind::NegativeShare),
                (11, Severity::Critical, AlertKind::NegativeShare),
            ]
        );
        // The episode did not move the baseline.
        assert!((d.baseline("a").unwrap().share_mean - 0.3).abs() < 0.01);
        // Within the cooldown a new episode stays silent.
        let mut d = Detector::new(DetectorSettings { cooldown: 10, ..Default::default() });
        let alerts = run(&mut d, "a", &stream);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
    }

    #[test]
    fn a_noisy_topic_needs_a_larger_rise_than_a_steady_one() {
        // Shares swinging between 15% and 45% at 100 records a window: the
        // beta-binomial widens the tail, so 55% does not alarm there while
        // it does against a steady 30%.
        let noisy: Vec<(u64, u64)> = (0..30).map(|i| (100, if i % 2 == 0 { 15 } else { 45 })).collect();
        let mut d = Detector::new(DetectorSettings::default());
        assert!(run(&mut d, "noisy", &[&noisy[..], &[(100, 55)]].concat()).is_empty());
        let mut d = Detector::new(DetectorSettings::default());
        let steady = vec![(100, 30); 30];
        assert_eq!(run(&mut d, "steady", &[&steady[..], &[(100, 55)]].concat()).len(), 1);
    }

    #[test]
    fn volume_spikes_alarm_and_topics_are_independent() {
        let mut d = Detector::new(DetectorSettings::default());
        let mut stream = vec![(100, 30); 8];
        stream.push((400, 120)); // four times the volume, same share
        let alerts = run(&mut d, "a", &stream);
        assert_eq!(alerts, [(8, Severity::Critical, AlertKind::Volume)]);
        assert!(d.baseline("b").is_none());
        assert!(run(&mut d, "b", &[(100, 30), (100, 90)]).is_empty(), "b has no baseline yet");
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut d = Detector::new(DetectorSettings::default());
        run(&mut d, "a", &[(100, 30), (100, 30), (100, 30), (100, 30), (100, 80)]);
        let back: Detector = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
