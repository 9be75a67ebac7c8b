//! Dynamic batching: inputs of concurrent requests wait in a bounded queue;
//! a dedicated thread per model takes the first job, gathers more until the
//! batch holds `max_batch` inputs or `max_wait` has passed, runs them in one
//! model call on the shared compute pool, and sends each request its answers.
//! A full queue refuses new jobs at once (the caller answers 429).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::{Backend, Input, Record};
use crate::metrics::Metrics;
use crate::ServeError;

/// The answer to one job: one record per input, or the error of the model
/// call (shared by every job of that batch).
pub type JobResult = Result<Vec<Record>, Arc<ServeError>>;

struct Job {
    inputs: Vec<Input>,
    reply: oneshot::Sender<JobResult>,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Most inputs in one model call.
    pub max_batch: usize,
    /// Longest a first job waits for company.
    pub max_wait: Duration,
    /// Most jobs waiting; more are refused.
    pub max_queue: usize,
}

/// The sending side of one model's queue.
pub struct Batcher {
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full.
    Full,
    /// The model thread has stopped.
    Closed,
}

impl Batcher {
    /// Starts the model thread for `backend`; `policy` must be valid (see
    /// [`crate::ServeOptions::validate`]).
    pub fn start(
        name: &str,
        backend: Arc<Backend>,
        policy: BatchPolicy,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(policy.max_queue);
        let depth = Arc::new(AtomicUsize::new(0));
        let thread_depth = Arc::clone(&depth);
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || run(&backend, &receiver, policy, &thread_depth, &metrics))?;
        Ok(Self { sender, depth })
    }

    /// Queues `inputs`; the answer arrives on the returned channel.
    pub fn submit(&self, inputs: Vec<Input>) -> Result<oneshot::Receiver<JobResult>, Refused> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(Job { inputs, reply }) {
            Ok(()) => Ok(answer),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Closed,
                })
            }
        }
    }

    /// Jobs waiting now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

fn run(backend: &Backend, receiver: &Receiver<Job>, policy: BatchPolicy, depth: &AtomicUsize, metrics: &Metrics) {
    // Ends when every sender is gone (the server has shut down).
    while let Ok(first) = receiver.recv() {
        let deadline = Instant::now() + policy.max_wait;
        let mut size = first.inputs.len();
        let mut jobs = vec![first];
        while size < policy.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(job) => {
                    size += job.inputs.len();
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.fetch_sub(jobs.len(), Ordering::SeqCst);
        // Requests whose client has gone are not computed.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let inputs: Vec<Input> = jobs.iter().flat_map(|j| j.inputs.iter().cloned()).collect();
        metrics.observe_batch(inputs.len());
        match rayon::scope(|_| backend.run(&inputs)) {
            Ok(mut records) => {
                for job in jobs.into_iter().rev() {
                    let mine = records.split_off(records.len() - job.inputs.len());
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for job in jobs {
                    let _ = job.reply.send(Err(Arc::clone(&error)));
                }
            }
        }
    }
}
