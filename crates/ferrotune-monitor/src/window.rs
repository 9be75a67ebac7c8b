//! Tumbling windows per topic, with an allowed lateness and a watermark.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::MonitorError;

/// Texts of a window kept for its alerts: the most negative ones.
const KEPT_TEXTS: usize = 5;

/// A record after classification, counted under one topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classified {
    /// Event time, Unix seconds.
    pub time: i64,
    /// The topic it is counted under (the overall stream is a topic too).
    pub topic: String,
    /// The model's label.
    pub label: String,
    /// Whether that label is a negative one.
    pub negative: bool,
    /// The model's probability of the negative labels.
    pub negative_score: f32,
    /// The text.
    pub text: String,
}

/// One topic's counts over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The topic.
    pub topic: String,
    /// First second of the window (Unix seconds).
    pub start: i64,
    /// First second after it.
    pub end: i64,
    /// Records.
    pub count: u64,
    /// Records with a negative label.
    pub negatives: u64,
    /// Records per label.
    pub labels: BTreeMap<String, u64>,
    /// Sum of the records' negative scores.
    pub negative_score_sum: f64,
    /// The most negative texts, most negative first, with their scores.
    pub most_negative: Vec<(f32, String)>,
}

impl Window {
    fn empty(topic: &str, start: i64, width: i64) -> Self {
        Self {
            topic: topic.to_string(),
            start,
            end: start + width,
            count: 0,
            negatives: 0,
            labels: BTreeMap::new(),
            negative_score_sum: 0.0,
            most_negative: Vec::new(),
        }
    }

    /// Share of negative records (0 for an empty window).
    pub fn negative_share(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.negatives as f64 / self.count as f64
        }
    }

    /// Mean negative score (0 for an empty window).
    pub fn mean_negative_score(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.negative_score_sum / self.count as f64
        }
    }

    fn add(&mut self, record: Classified) {
        self.count += 1;
        self.negatives += u64::from(record.negative);
        *self.labels.entry(record.label).or_default() += 1;
        self.negative_score_sum += f64::from(record.negative_score);
        if record.negative {
            let at = self.most_negative.partition_point(|(s, _)| *s >= record.negative_score);
            if at < KEPT_TEXTS {
                self.most_negative.insert(at, (record.negative_score, record.text));
                self.most_negative.truncate(KEPT_TEXTS);
            }
        }
    }
}

/// Open windows of every topic. The watermark is the latest event time
/// seen minus the allowed lateness: a window is final once the watermark
/// reaches its end, and a record whose window is final is refused as too
/// late. Every topic seen gets a window for every period from its first
/// record on, empty or not, so that each topic's windows are contiguous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    width: i64,
    lateness: i64,
    latest: Option<i64>,
    /// Start of the first window not yet final.
    next_final: Option<i64>,
    topics: BTreeSet<String>,
    open: BTreeMap<i64, BTreeMap<String, Window>>,
}

impl Windows {
    /// Windows `width` seconds wide; records up to `lateness` seconds
    /// behind the latest one are accepted.
    pub fn new(width: i64, lateness: i64) -> Self {
        assert!(width > 0 && lateness >= 0, "width > 0 and lateness >= 0");
        Self { width, lateness, latest: None, next_final: None, topics: BTreeSet::new(), open: BTreeMap::new() }
    }

    /// Start of the window of `time`.
    pub fn window_start(&self, time: i64) -> i64 {
        time.div_euclid(self.width) * self.width
    }

    /// Latest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.latest.map(|t| t - self.lateness)
    }

    /// Why a record at `time` would be refused: its window is final.
    pub fn lateness_error(&self, time: i64) -> Option<MonitorError> {
        let watermark = self.watermark()?;
        (self.window_start(time) + self.width <= watermark).then_some(MonitorError::TooLate { time, watermark })
    }

    /// Counts `record` in its window and returns the windows that became
    /// final (in time order, topics sorted within a period). A record
    /// whose window is already final is refused.
    pub fn add(&mut self, record: Classified) -> Result<Vec<Window>, MonitorError> {
        if let Some(late) = self.lateness_error(record.time) {
            return Err(late);
        }
        let start = self.window_start(record.time);
        self.next_final = Some(self.next_final.map_or(start, |s| s.min(start)));
        self.topics.insert(record.topic.clone());
        let (topic, width) = (record.topic.clone(), self.width);
        let window = self.open.entry(start).or_default().entry(topic.clone());
        window.or_insert_with(|| Window::empty(&topic, start, width)).add(record.clone());
        self.latest = Some(self.latest.map_or(record.time, |t| t.max(record.time)));
        Ok(self.finalize(self.watermark().expect("a record was seen")))
    }

    /// Every window still open, as final (the end of a stream).
    pub fn flush(&mut self) -> Vec<Window> {
        match self.open.keys().next_back() {
            Some(&last) => self.finalize(last + self.width),
            None => Vec::new(),
        }
    }

    fn finalize(&mut self, watermark: i64) -> Vec<Window> {
        let mut done = Vec::new();
        while let Some(start) = self.next_final.filter(|s| s + self.width <= watermark) {
            let mut period = self.open.remove(&start).unwrap_or_default();
            for topic in &self.topics {
                done.push(period.remove(topic).unwrap_or_else(|| Window::empty(topic, start, self.width)));
            }
            self.next_final = Some(start + self.width);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: i64, topic: &str, negative: bool) -> Classified {
        let label = if negative { "negative" } else { "positive" };
        let score = if negative { 0.9 } else { 0.1 };
        Classified {
            time,
            topic: topic.into(),
            label: label.into(),
            negative,
            negative_score: score,
            text: format!("t{time}"),
        }
    }

    #[test]
    fn windows_close_at_the_watermark_and_late_records_count() {
        let mut w = Windows::new(60, 30);
        assert!(w.add(record(0, "a", true)).unwrap().is_empty());
        assert!(w.add(record(61, "b", false)).unwrap().is_empty(), "watermark 31 has not passed 60");
        // Late but within the lateness: counted in the first window.
        assert!(w.add(record(59, "a", false)).unwrap().is_empty());
        let done = w.add(record(95, "a", true)).unwrap();
        assert_eq!(done.len(), 2, "window [0, 60) final for both topics seen");
        let (a, b) = (&done[0], &done[1]);
        assert_eq!((a.topic.as_str(), a.start, a.end, a.count, a.negatives), ("a", 0, 60, 2, 1));
        assert_eq!(a.labels["negative"], 1);
        assert_eq!(a.most_negative, vec![(0.9, "t0".to_string())]);
        assert!((a.mean_negative_score() - 0.5).abs() < 1e-6);
        assert_eq!((b.topic.as_str(), b.count), ("b", 0), "an empty window for a topic already seen");
        let e = w.add(record(20, "a", true)).unwrap_err().to_string();
        assert!(e.contains("record at 20 is too late") && e.contains("watermark 65"), "{e}");
        // A gap: empty windows in between, then the rest at the end.
        let done = w.add(record(400, "a", false)).unwrap();
        assert_eq!(done.iter().map(|w| w.start).collect::<Vec<_>>(), [60, 60, 120, 120, 180, 180, 240, 240, 300, 300]);
        assert_eq!(done[0].count + done[1].count, 2);
        let rest = w.flush();
        assert_eq!(rest.iter().map(|w| (w.start, w.count)).collect::<Vec<_>>(), [(360, 1), (360, 0)]);
        assert!(w.flush().is_empty());
    }

    #[test]
    fn the_most_negative_texts_are_kept_in_order() {
        let mut window = Window::empty("a", 0, 60);
        for (i, score) in [0.6, 0.99, 0.7, 0.95, 0.8, 0.65, 0.9].into_iter().enumerate() {
            let mut r = record(i as i64, "a", true);
            r.negative_score = score;
            window.add(r);
        }
        let scores: Vec<f32> = window.most_negative.iter().map(|(s, _)| *s).collect();
        assert_eq!(scores, [0.99, 0.95, 0.9, 0.8, 0.7]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut w = Windows::new(60, 0);
        w.add(record(5, "a", true)).unwrap();
        let back: Windows = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
    }
}
