//! Dynamic batching by cost: each request's inputs arrive with their token
//! counts and wait in a queue bounded in requests and in tokens (a full
//! queue refuses at once; the caller answers 429). A dedicated thread per
//! model takes the first job, gathers more for up to `max_wait`, and runs
//! slices of at most `max_batch_tokens` tokens (and `max_batch` inputs) on
//! the shared compute pool. A long request is computed slice by slice, in
//! turn with the others, so it never holds the model for more than one
//! slice; a request past its deadline (or whose client has gone) is dropped
//! from the queue and never computed. A panic in a model call fails that
//! slice's requests (500) and the thread keeps serving.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::{Input, Record, SharedAdapter};
use crate::metrics::Metrics;
use crate::ServeError;

/// The answer to one job: one record per input, or the error of the model
/// call (shared by every job of that slice).
pub type JobResult = Result<Vec<Record>, Arc<ServeError>>;

/// What a batching thread runs: a model answering a slice of inputs with
/// one record each, in order.
pub trait Runner: Send + Sync + 'static {
    /// The record of every input, in order.
    fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError>;

    /// The record of every input of every part (one request's slice and
    /// the LoRA adapter it names, if any), in order; `inputs` are the
    /// parts' inputs end to end. Runners without adapters answer `inputs`
    /// in one [`Self::run`].
    fn run_parts(&self, inputs: &[Input], parts: &[Part]) -> Result<Vec<Record>, ServeError> {
        debug_assert!(parts.iter().all(|p| p.adapter.is_none()), "adapters for a model without any");
        self.run(inputs)
    }
}

/// One request's inputs in a batch, and the adapter they run with.
pub struct Part<'a> {
    /// The adapter the request names (the adapters' base only).
    pub adapter: Option<&'a SharedAdapter>,
    /// The inputs.
    pub inputs: &'a [Input],
}

/// How batches are formed and how much may wait.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Most inputs in one model call.
    pub max_batch: usize,
    /// Most tokens in one model call (an input longer than this runs alone).
    pub max_batch_tokens: usize,
    /// Longest a first job waits for company.
    pub max_wait: Duration,
    /// Most requests waiting; more are refused.
    pub max_queue: usize,
    /// Most tokens waiting (not yet computed); more are refused.
    pub max_queue_tokens: usize,
}

struct Job {
    inputs: Vec<Input>,
    /// The adapter the request names, if any.
    adapter: Option<SharedAdapter>,
    costs: Vec<usize>,
    /// The first input not computed yet.
    next: usize,
    /// Records of the inputs computed so far.
    done: Vec<Record>,
    /// Tokens of the inputs not computed yet.
    pending: usize,
    queued_at: Instant,
    deadline: Instant,
    reply: oneshot::Sender<JobResult>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    tokens: usize,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    alive: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side of one model's queue; dropping it stops the thread
/// once the queue is empty.
pub struct Batcher {
    shared: Arc<Shared>,
    policy: BatchPolicy,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full (requests or tokens).
    Full,
    /// The model thread has stopped.
    Closed,
}

/// Marks the thread as stopped when it ends, however it ends.
struct AliveGuard(Arc<Shared>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

impl Batcher {
    /// Starts the model thread for `runner`; `policy` must be valid (see
    /// [`crate::ServeOptions::validate`]).
    pub fn start(
        name: &str,
        runner: Arc<dyn Runner>,
        policy: BatchPolicy,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { queue: Mutex::default(), wake: Condvar::new(), alive: AtomicBool::new(true) });
        let thread_shared = Arc::clone(&shared);
        let model = name.to_string();
        std::thread::Builder::new().name(format!("model-{name}")).spawn(move || {
            let guard = AliveGuard(thread_shared);
            run(&model, runner.as_ref(), &guard.0, policy, &metrics);
        })?;
        Ok(Self { shared, policy })
    }

    /// Queues `inputs` (with the token count of each) to be answered before
    /// `deadline`, by `adapter` where the batcher runs the adapters' base;
    /// the answer arrives on the returned channel.
    pub fn submit(
        &self,
        inputs: Vec<Input>,
        costs: Vec<usize>,
        adapter: Option<SharedAdapter>,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<JobResult>, Refused> {
        debug_assert_eq!(inputs.len(), costs.len());
        if !self.is_alive() {
            return Err(Refused::Closed);
        }
        let tokens: usize = costs.iter().sum();
        let mut queue = self.shared.lock();
        if queue.jobs.len() >= self.policy.max_queue || queue.tokens + tokens > self.policy.max_queue_tokens {
            return Err(Refused::Full);
        }
        let (reply, answer) = oneshot::channel();
        queue.tokens += tokens;
        let done = Vec::with_capacity(inputs.len());
        let now = Instant::now();
        queue.jobs.push_back(Job {
            inputs,
            adapter,
            costs,
            next: 0,
            done,
            pending: tokens,
            queued_at: now,
            deadline,
            reply,
        });
        drop(queue);
        self.shared.wake.notify_all();
        Ok(answer)
    }

    /// Requests waiting or being computed now.
    pub fn depth(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Tokens waiting to be computed now.
    pub fn queued_tokens(&self) -> usize {
        self.shared.lock().tokens
    }

    /// Whether the model thread is running.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Removes the jobs at `indexes` (ascending) from the queue, answering each
/// with `answer` and releasing its tokens.
fn finish(queue: &mut Queue, indexes: &[usize], mut answer: impl FnMut(&mut Job) -> JobResult) {
    for &i in indexes.iter().rev() {
        if let Some(mut job) = queue.jobs.remove(i) {
            queue.tokens -= job.pending;
            let result = answer(&mut job);
            let _ = job.reply.send(result);
        }
    }
}

fn run(model: &str, runner: &dyn Runner, shared: &Shared, policy: BatchPolicy, metrics: &Metrics) {
    loop {
        let mut queue = shared.lock();
        while queue.jobs.is_empty() {
            if queue.stopping {
                return;
            }
            queue = shared.wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        // Gather company for a fresh first job, up to `max_wait`.
        if let Some(first) = queue.jobs.front().filter(|j| j.next == 0) {
            let until = first.queued_at + policy.max_wait;
            loop {
                let inputs: usize = queue.jobs.iter().map(|j| j.inputs.len() - j.next).sum();
                let now = Instant::now();
                if inputs >= policy.max_batch || queue.tokens >= policy.max_batch_tokens || now >= until {
                    break;
                }
                queue = shared.wake.wait_timeout(queue, until - now).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        // Requests past their deadline or whose client has gone are dropped.
        let now = Instant::now();
        let stale: Vec<usize> = (0..queue.jobs.len())
            .filter(|&i| queue.jobs[i].reply.is_closed() || queue.jobs[i].deadline <= now)
            .collect();
        if !stale.is_empty() {
            let expired = Arc::new(ServeError::Expired { model: model.to_string() });
            finish(&mut queue, &stale, |_| Err(Arc::clone(&expired)));
        }
        // One slice: whole inputs, in queue order, within the budgets (an
        // input over the token budget runs alone).
        let mut slice: Vec<(usize, usize, usize)> = Vec::new(); // (job, from, to)
        let (mut tokens, mut count) = (0usize, 0usize);
        'jobs: for (i, job) in queue.jobs.iter().enumerate() {
            let mut to = job.next;
            while to < job.inputs.len() {
                let cost = job.costs[to];
                let fits = tokens + cost <= policy.max_batch_tokens && count < policy.max_batch;
                if !fits && count > 0 {
                    if to > job.next {
                        slice.push((i, job.next, to));
                    }
                    break 'jobs;
                }
                tokens += cost;
                count += 1;
                to += 1;
            }
            if to > job.next {
                slice.push((i, job.next, to));
            }
        }
        if slice.is_empty() {
            continue;
        }
        let inputs: Vec<Input> =
            slice.iter().flat_map(|&(i, from, to)| queue.jobs[i].inputs[from..to].iter().cloned()).collect();
        let adapters: Vec<Option<SharedAdapter>> = slice.iter().map(|&(i, ..)| queue.jobs[i].adapter.clone()).collect();
        drop(queue);
        let mut rest = inputs.as_slice();
        let parts: Vec<Part> = slice
            .iter()
            .zip(&adapters)
            .map(|(&(_, from, to), adapter)| {
                let (mine, others) = rest.split_at(to - from);
                rest = others;
                Part { adapter: adapter.as_ref(), inputs: mine }
            })
            .collect();
        let count = inputs.len();

        metrics.observe_batch(count);
        let outcome = catch_unwind(AssertUnwindSafe(|| rayon::scope(|_| runner.run_parts(&inputs, &parts))));
        let result = match outcome {
            Ok(Ok(records)) if records.len() == count => Ok(records),
            Ok(Ok(records)) => Err(ServeError::WrongRecordCount { expected: count, got: records.len() }),
            Ok(Err(error)) => Err(error),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!("model '{model}' panicked on a batch of {count} inputs: {message}");
                Err(ServeError::Panicked { model: model.to_string(), message })
            }
        };

        let mut queue = shared.lock();
        let indexes: Vec<usize> = slice.iter().map(|s| s.0).collect();
        match result {
            Ok(records) => {
                let mut records = records.into_iter();
                let mut complete = Vec::new();
                for &(i, from, to) in &slice {
                    let job = &mut queue.jobs[i];
                    job.done.extend(records.by_ref().take(to - from));
                    let spent: usize = job.costs[from..to].iter().sum();
                    job.pending -= spent;
                    job.next = to;
                    queue.tokens -= spent;
                    if to == queue.jobs[i].inputs.len() {
                        complete.push(i);
                    }
                }
                finish(&mut queue, &complete, |job| Ok(std::mem::take(&mut job.done)));
                // A request cut into slices waits behind the others' next slice.
                if let Some(&(i, _, _)) = slice.first() {
                    if !complete.contains(&i) && i == 0 {
                        if let Some(job) = queue.jobs.pop_front() {
                            queue.jobs.push_back(job);
                        }
                    }
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                finish(&mut queue, &indexes, |_| Err(Arc::clone(&error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Answers each text with itself; panics on the text "panic"; counts
    /// the inputs and the calls it computed.
    #[derive(Default)]
    struct Echo {
        computed: AtomicUsize,
        calls: Mutex<Vec<usize>>,
    }

    impl Runner for Echo {
        fn run(&self, inputs: &[Input]) -> Result<Vec<Record>, ServeError> {
            self.calls.lock().unwrap().push(inputs.len());
            self.computed.fetch_add(inputs.len(), Ordering::SeqCst);
            inputs
                .iter()
                .map(|i| match i {
                    Input::Text(t) if t == "panic" => panic!("asked to panic"),
                    Input::Text(t) => Ok(serde_json::value::to_raw_value(t).unwrap()),
                    _ => unreachable!(),
                })
                .collect()
        }
    }

    fn policy() -> BatchPolicy {
        BatchPolicy {
            max_batch: 8,
            max_batch_tokens: 10,
            max_wait: Duration::from_millis(1),
            max_queue: 4,
            max_queue_tokens: 100,
        }
    }

    fn texts(t: &[&str]) -> Vec<Input> {
        t.iter().map(|s| Input::Text(s.to_string())).collect()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn answer(rx: oneshot::Receiver<JobResult>) -> JobResult {
        rx.blocking_recv().expect("an answer")
    }

    /// Item 3 of issue 13: a panic in a model call fails that call's
    /// requests and the thread keeps serving the next ones.
    #[test]
    fn a_panic_fails_its_batch_and_the_thread_keeps_serving() {
        let echo = Arc::new(Echo::default());
        let b = Batcher::start("t", echo.clone(), policy(), Arc::default()).unwrap();
        let failed = answer(b.submit(texts(&["panic"]), vec![1], None, later()).unwrap()).unwrap_err();
        assert!(matches!(failed.as_ref(), ServeError::Panicked { message, .. } if message == "asked to panic"));
        let ok = answer(b.submit(texts(&["a", "b"]), vec![1, 1], None, later()).unwrap()).unwrap();
        assert_eq!(ok.iter().map(|r| r.get()).collect::<Vec<_>>(), ["\"a\"", "\"b\""]);
        assert!(b.is_alive());
        assert_eq!(b.queued_tokens(), 0);
    }

    /// The queue is bounded in tokens as well as in requests.
    #[test]
    fn the_queue_is_bounded_in_tokens() {
        let echo = Arc::new(Echo::default());
        let p = BatchPolicy { max_wait: Duration::from_millis(300), max_queue_tokens: 10, ..policy() };
        let b = Batcher::start("t", echo, p, Arc::default()).unwrap();
        let first = b.submit(texts(&["a"]), vec![8], None, later()).unwrap();
        assert_eq!(b.submit(texts(&["b"]), vec![3], None, later()).unwrap_err(), Refused::Full);
        let second = b.submit(texts(&["c"]), vec![2], None, later()).unwrap();
        assert!(answer(first).is_ok() && answer(second).is_ok());
    }

    /// A request past its deadline is answered `Expired` and never computed.
    #[test]
    fn expired_requests_are_never_computed() {
        let echo = Arc::new(Echo::default());
        let p = BatchPolicy { max_wait: Duration::from_millis(50), ..policy() };
        let b = Batcher::start("t", echo.clone(), p, Arc::default()).unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        let late = b.submit(texts(&["x", "y"]), vec![1, 1], None, soon).unwrap();
        assert!(matches!(answer(late).unwrap_err().as_ref(), ServeError::Expired { .. }));
        assert_eq!(echo.computed.load(Ordering::SeqCst), 0);
    }

    /// A long request runs in slices of at most `max_batch_tokens` tokens,
    /// and a short one that arrives meanwhile is served between them.
    #[test]
    fn long_requests_run_in_token_bounded_slices() {
        let echo = Arc::new(Echo::default());
        let b = Batcher::start("t", echo.clone(), policy(), Arc::default()).unwrap();
        let words: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        let long: Vec<Input> = words.iter().cloned().map(Input::Text).collect();
        let long = b.submit(long, vec![4; 12], None, later()).unwrap();
        let short = b.submit(texts(&["s"]), vec![1], None, later()).unwrap();
        let records = answer(long).unwrap();
        assert_eq!(records.len(), 12);
        assert_eq!(records[11].get(), "\"w11\"");
        assert_eq!(answer(short).unwrap()[0].get(), "\"s\"");
        let calls = echo.calls.lock().unwrap().clone();
        // 12 inputs of 4 tokens with a budget of 10: two per call.
        assert!(calls.iter().all(|&n| n <= 3), "{calls:?}");
        assert!(calls.len() >= 6, "{calls:?}");
    }
}
