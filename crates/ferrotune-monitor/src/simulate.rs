//! Replay for measurement: a labelled stream built from a text set, with
//! negative bursts injected at known windows, and the score of a run's
//! alerts against them.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Alert, AlertKind, MonitorError, Severity};

/// How the stream is made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimulationSettings {
    /// Windows in the stream.
    pub windows: usize,
    /// Records per window.
    pub volume: usize,
    /// Window width, seconds.
    pub width: i64,
    /// Time of the first window's start (Unix seconds).
    pub start_time: i64,
    /// Negative share outside the bursts.
    pub base_share: f64,
    /// Bursts injected, spread over the stream.
    pub bursts: usize,
    /// How much a burst raises the negative share.
    pub burst_rise: f64,
    /// Windows a burst lasts.
    pub burst_windows: usize,
    /// Seed of every draw.
    pub seed: u64,
}

/// A burst injected at known windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    /// Index of its first window.
    pub start_window: usize,
    /// Windows it lasts.
    pub windows: usize,
    /// Negative share during it.
    pub share: f64,
}

/// A record of the replayed stream, with the data's own label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// Unix seconds.
    pub time: i64,
    /// The text.
    pub text: String,
    /// The data's label.
    pub label: String,
    /// A unique id.
    pub id: String,
}

/// The ground truth of a replayed stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// The settings it was made with.
    pub settings: SimulationSettings,
    /// The bursts, in time order.
    pub bursts: Vec<Burst>,
}

/// Builds a stream from `negatives` and `others` (texts with their labels),
/// drawn with replacement: `volume` records a window at `base_share`
/// negative, and `base_share + burst_rise` during each burst. Bursts are
/// spread evenly, each at a random offset in its stretch, none in the first
/// tenth of the stream (the baseline's warm-up).
pub fn simulate(
    negatives: &[(String, String)],
    others: &[(String, String)],
    s: &SimulationSettings,
) -> Result<(Vec<ReplayRecord>, Truth), MonitorError> {
    let invalid = |field, expected| Err(MonitorError::InvalidSetting { field, expected });
    if negatives.is_empty() || others.is_empty() {
        return invalid("texts", "negative and other texts both");
    }
    let share = s.base_share + s.burst_rise;
    if !(0.0..=1.0).contains(&s.base_share) || !(0.0..=1.0).contains(&share) {
        return invalid("base_share and burst_rise", "shares between 0 and 1");
    }
    if s.width <= 0 || s.volume == 0 || s.windows == 0 {
        return invalid("width, volume and windows", "positive");
    }
    let warmup = s.windows / 10;
    let stretch = (s.windows - warmup).checked_div(s.bursts).unwrap_or(0);
    if s.bursts > 0 && stretch < 2 * s.burst_windows + 2 {
        return invalid("bursts", "room: at least 2 x burst_windows + 2 windows per burst after the first tenth");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let bursts: Vec<Burst> = (0..s.bursts)
        .map(|i| {
            let room = stretch - 2 * s.burst_windows;
            let start_window = warmup + i * stretch + rng.random_range(0..room);
            Burst { start_window, windows: s.burst_windows, share }
        })
        .collect();
    let mut records = Vec::with_capacity(s.windows * s.volume);
    for w in 0..s.windows {
        let in_burst = bursts.iter().any(|b| (b.start_window..b.start_window + b.windows).contains(&w));
        let share = if in_burst { share } else { s.base_share };
        let negative_count = (share * s.volume as f64).round() as usize;
        let mut times: Vec<i64> = (0..s.volume).map(|_| rng.random_range(0..s.width)).collect();
        times.sort_unstable();
        let mut window: Vec<(String, String)> = (0..s.volume)
            .map(|i| if i < negative_count { negatives } else { others }.choose(&mut rng).expect("not empty").clone())
            .collect();
        // Shuffle so that negatives are not all first in the window.
        for i in (1..window.len()).rev() {
            window.swap(i, rng.random_range(0..=i));
        }
        for (i, ((text, label), offset)) in window.into_iter().zip(times).enumerate() {
            let time = s.start_time + w as i64 * s.width + offset;
            records.push(ReplayRecord { time, text, label, id: format!("{w}-{i}") });
        }
    }
    Ok((records, Truth { settings: *s, bursts }))
}

/// How well a run's alerts found the bursts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionScore {
    /// Bursts injected.
    pub bursts: usize,
    /// Of those, found within `max_delay` windows of their start.
    pub detected: usize,
    /// `detected / bursts`.
    pub recall: f64,
    /// Mean windows from a burst's start to its alert (detected bursts).
    pub mean_delay: f64,
    /// Alerts outside every burst (and its `max_delay` windows).
    pub false_alerts: usize,
    /// Windows outside the bursts.
    pub quiet_windows: usize,
    /// False alerts per 500 quiet windows.
    pub false_alerts_per_500_windows: f64,
}

/// Scores the negative-share alerts of `topic` against the truth: an alert
/// detects a burst when it is raised at most `max_delay` windows after the
/// burst's start; an alert neither in a burst nor within `max_delay`
/// windows of one's start is false.
pub fn score(truth: &Truth, alerts: &[Alert], topic: &str, max_delay: usize) -> DetectionScore {
    let s = &truth.settings;
    let raised: Vec<usize> = alerts
        .iter()
        .filter(|a| a.topic == topic && a.kind == AlertKind::NegativeShare && a.severity != Severity::Resolved)
        .map(|a| ((a.window_start - s.start_time) / s.width) as usize)
        .collect();
    let mut delays = Vec::new();
    for b in &truth.bursts {
        if let Some(w) = raised.iter().find(|&&w| w >= b.start_window && w <= b.start_window + max_delay) {
            delays.push(w - b.start_window);
        }
    }
    let near_burst = |w: usize| {
        truth.bursts.iter().any(|b| w >= b.start_window && w <= b.start_window + b.windows.max(max_delay + 1))
    };
    let false_alerts = raised.iter().filter(|&&w| !near_burst(w)).count();
    let burst_windows: usize = truth.bursts.iter().map(|b| b.windows).sum();
    let quiet_windows = s.windows.saturating_sub(burst_windows);
    DetectionScore {
        bursts: truth.bursts.len(),
        detected: delays.len(),
        recall: if truth.bursts.is_empty() { 1.0 } else { delays.len() as f64 / truth.bursts.len() as f64 },
        mean_delay: if delays.is_empty() { 0.0 } else { delays.iter().sum::<usize>() as f64 / delays.len() as f64 },
        false_alerts,
        quiet_windows,
        false_alerts_per_500_windows: false_alerts as f64 * 500.0 / quiet_windows.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Classified, Detector, DetectorSettings, Windows};

    fn texts(label: &str, n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("{label} text {i}"), label.to_string())).collect()
    }

    fn settings() -> SimulationSettings {
        SimulationSettings {
            windows: 200,
            volume: 60,
            width: 3600,
            start_time: 1_767_225_600,
            base_share: 0.3,
            bursts: 5,
            burst_rise: 0.3,
            burst_windows: 2,
            seed: 7,
        }
    }

    #[test]
    fn streams_carry_their_bursts_and_a_perfect_classifier_finds_them() {
        let (negatives, others) = (texts("negative", 50), texts("positive", 80));
        let (records, truth) = simulate(&negatives, &others, &settings()).unwrap();
        assert_eq!(records.len(), 200 * 60);
        assert_eq!(truth.bursts.len(), 5);
        assert!(records.windows(2).all(|p| p[0].time <= p[1].time), "in time order");
        let share_of = |w: usize| {
            let window = &records[w * 60..(w + 1) * 60];
            window.iter().filter(|r| r.label == "negative").count() as f64 / 60.0
        };
        let b = truth.bursts[2];
        assert!((share_of(b.start_window) - 0.6).abs() < 1e-9 && (share_of(b.start_window + 2) - 0.3).abs() < 1e-9);
        assert!(truth.bursts.iter().all(|b| b.start_window >= 20));
        let again = simulate(&negatives, &others, &settings()).unwrap();
        assert_eq!(again.0, records, "seeded");

        // The data's own labels as the model: every burst found at once.
        let mut windows = Windows::new(3600, 0);
        let mut detector = Detector::new(DetectorSettings::default());
        let mut alerts = Vec::new();
        for r in records {
            let negative = r.label == "negative";
            let record = Classified {
                time: r.time,
                topic: "*".into(),
                label: r.label,
                negative,
                negative_score: f32::from(u8::from(negative)),
                text: r.text,
            };
            for window in windows.add(record).unwrap() {
                alerts.extend(detector.observe(&window));
            }
        }
        let result = score(&truth, &alerts, "*", 2);
        assert_eq!((result.detected, result.false_alerts, result.recall), (5, 0, 1.0), "{result:?}");
        assert_eq!(result.mean_delay, 0.0);
        assert_eq!(result.quiet_windows, 190);
    }

    #[test]
    fn scoring_counts_late_and_false_alerts() {
        let truth = Truth {
            settings: settings(),
            bursts: vec![
                Burst { start_window: 50, windows: 2, share: 0.6 },
                Burst { start_window: 120, windows: 2, share: 0.6 },
            ],
        };
        let alert = |w: i64| Alert {
            kind: AlertKind::NegativeShare,
            severity: Severity::Warning,
            topic: "*".into(),
            window_start: 1_767_225_600 + w * 3600,
            window_end: 1_767_225_600 + (w + 1) * 3600,
            count: 60,
            negatives: 36,
            observed_share: 0.6,
            baseline_share: 0.3,
            baseline_count: 60.0,
            p_value: 1e-6,
            texts: vec![],
        };
        // Burst 1 found one window late, burst 2 missed (alert 4 windows late), one false alert.
        let result = score(&truth, &[alert(51), alert(124), alert(10)], "*", 2);
        assert_eq!((result.detected, result.false_alerts), (1, 2), "{result:?}");
        assert_eq!(result.mean_delay, 1.0);
        assert!((result.false_alerts_per_500_windows - 2.0 * 500.0 / 196.0).abs() < 1e-9);
        assert!(simulate(&[], &texts("positive", 3), &settings()).is_err());
        let crowded = SimulationSettings { bursts: 60, ..settings() };
        let e = simulate(&texts("negative", 3), &texts("positive", 3), &crowded).unwrap_err().to_string();
        assert!(e.contains("bursts"), "{e}");
    }
}
