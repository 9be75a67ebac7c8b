//! Logging a training run to an MLflow tracking server through its REST
//! API (`--mlflow-uri`, `--mlflow-experiment`): the options as params, the
//! numbers of every `metrics.jsonl` line as metrics (named as in the
//! TensorBoard files) in `log-batch` requests within MLflow's limits, the
//! saved model folder as artifacts (through the server's artifact proxy),
//! and the run's end status. A server that does not answer never stops
//! training: a warning is printed and what is pending is sent again at the
//! end of each epoch, and at the end.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrotune_train::{DataSummary, EpochReport, RunStart, StepReport, TrainObserver};
use serde_json::{json, Value};
use ureq::Agent;

/// MLflow's `log-batch` limits: metrics, params and all entries per request.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
/// MLflow's longest param value.
const MAX_PARAM_CHARS: usize = 6000;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The REST client of one server.
struct Client {
    agent: Agent,
    base: String,
}

impl Client {
    fn new(uri: &str) -> Self {
        let agent: Agent =
            Agent::config_builder().http_status_as_error(false).timeout_global(Some(TIMEOUT)).build().into();
        Self { agent, base: uri.trim_end_matches('/').to_string() }
    }

    /// The JSON answer, or why there is none (the server's message on a
    /// status other than 200).
    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            Ok(value)
        } else {
            Err(format!("HTTP {status}: {}", value["message"].as_str().unwrap_or(text.trim())))
        }
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        Self::answer(self.agent.post(&url).header("Content-Type", "application/json").send(body.to_string().as_str()))
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let mut request = self.agent.get(format!("{}/api/2.0/mlflow/{path}", self.base));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        Self::answer(request.call())
    }

    /// Uploads a file through the artifact proxy (`mlflow-artifacts:/...`).
    fn put_artifact(&self, path: &str, file: &Path) -> Result<(), String> {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        Self::answer(self.agent.put(&url).send(&bytes[..])).map(|_| ())
    }
}

/// The run on the server, once created.
struct ServerRun {
    id: String,
    /// Where artifacts go through the proxy (`<experiment>/<run>/artifacts`),
    /// if the server stores them (`mlflow-artifacts:/` URIs).
    artifact_path: Option<String>,
}

/// A [`TrainObserver`] that logs to MLflow and passes everything on to
/// `inner` (the progress bar).
pub struct MlflowTracker<'a> {
    inner: &'a mut dyn TrainObserver,
    client: Client,
    experiment: String,
    run_name: String,
    params: Vec<(String, String)>,
    run: Option<ServerRun>,
    params_sent: bool,
    pending: Vec<Value>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Every option as an MLflow param (nested values as JSON text).
fn params_of(options: &Value) -> Vec<(String, String)> {
    let Some(map) = options.as_object() else { return Vec::new() };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text.chars().take(MAX_PARAM_CHARS).collect())
        })
        .collect()
}

impl<'a> MlflowTracker<'a> {
    /// Logs to the server at `uri`, in `experiment` (made if missing), a run
    /// named `run_name` with `options` as its params.
    pub fn new(uri: &str, experiment: &str, run_name: &str, options: &Value, inner: &'a mut dyn TrainObserver) -> Self {
        Self {
            inner,
            client: Client::new(uri),
            experiment: experiment.to_string(),
            run_name: run_name.to_string(),
            params: params_of(options),
            run: None,
            params_sent: false,
            pending: Vec::new(),
        }
    }

    /// Creates the run (and the experiment) if not done yet.
    fn ensure_run(&mut self) -> Result<(), String> {
        if self.run.is_none() {
            let found = self.client.get("experiments/get-by-name", &[("experiment_name", &self.experiment)]);
            let experiment_id = match found {
                Ok(v) => v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string(),
                Err(e) if e.contains("HTTP 404") => {
                    let made = self.client.post("experiments/create", &json!({ "name": self.experiment }))?;
                    made["experiment_id"].as_str().unwrap_or_default().to_string()
                }
                Err(e) => return Err(e),
            };
            let tags = json!([{ "key": "mlflow.runName", "value": self.run_name }, { "key": "mlflow.source.name", "value": "ferrotune" }]);
            let body = json!({ "experiment_id": experiment_id, "start_time": now_ms(), "run_name": self.run_name, "tags": tags });
            let made = self.client.post("runs/create", &body)?;
            let info = &made["run"]["info"];
            let id = info["run_id"].as_str().ok_or("runs/create answered no run_id")?.to_string();
            let artifact_path = info["artifact_uri"]
                .as_str()
                .and_then(|u| u.strip_prefix("mlflow-artifacts:/"))
                .map(|p| p.trim_start_matches('/').to_string());
            self.run = Some(ServerRun { id, artifact_path });
        }
        if !self.params_sent {
            let id = self.run.as_ref().map(|r| r.id.clone()).unwrap_or_default();
            for chunk in self.params.chunks(MAX_PARAMS) {
                let params: Vec<Value> = chunk.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
                self.client.post("runs/log-batch", &json!({ "run_id": id, "params": params }))?;
            }
            self.params_sent = true;
        }
        Ok(())
    }

    /// Sends what is pending; on failure keeps what was not sent.
    fn flush(&mut self) -> Result<(), String> {
        self.ensure_run()?;
        let id = self.run.as_ref().map(|r| r.id.clone()).unwrap_or_default();
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_METRICS);
            let body = json!({ "run_id": id, "metrics": &self.pending[..n] });
            self.client.post("runs/log-batch", &body)?;
            self.pending.drain(..n);
        }
        Ok(())
    }

    fn flush_or_warn(&mut self, when: &str) {
        if let Err(e) = self.flush() {
            eprintln!(
                "warning: MLflow at {}: {e}; training goes on, {} metrics pending, retried {when}",
                self.client.base,
                self.pending.len()
            );
        }
    }

    /// Ends the run: sends what is pending, uploads the model folder `model`
    /// (when training succeeded) and sets the status. Failures are warnings.
    pub fn finish(mut self, model: Option<&Path>) {
        self.flush_or_warn("never (the run is over)");
        let Some(run) = self.run.take() else { return };
        if let (Some(model), Some(prefix)) = (model, &run.artifact_path) {
            let mut files: Vec<_> =
                std::fs::read_dir(model).into_iter().flatten().flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files.iter().filter(|f| f.is_file()) {
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if let Err(e) = self.client.put_artifact(&format!("{prefix}/model/{name}"), file) {
                    eprintln!("warning: MLflow: uploading {}: {e}", file.display());
                    break;
                }
            }
        }
        if let Some(model) = model {
            let path = std::fs::canonicalize(model).unwrap_or_else(|_| model.to_path_buf());
            let tag = json!({ "run_id": run.id, "key": "ferrotune.model_dir", "value": path.display().to_string() });
            let _ = self.client.post("runs/set-tag", &tag);
        }
        let status = if model.is_some() { "FINISHED" } else { "FAILED" };
        let update = json!({ "run_id": run.id, "status": status, "end_time": now_ms() });
        if let Err(e) = self.client.post("runs/update", &update) {
            eprintln!("warning: MLflow: ending the run: {e}");
        }
    }
}

impl TrainObserver for MlflowTracker<'_> {
    fn data(&mut self, summary: &DataSummary) {
        self.inner.data(summary);
    }

    fn start(&mut self, start: &RunStart) {
        self.inner.start(start);
        if let Err(e) = self.ensure_run() {
            eprintln!(
                "warning: MLflow at {}: {e}; training goes on, retried at the end of each epoch",
                self.client.base
            );
        }
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.inner.epoch_start(epoch, epochs, steps);
    }

    fn step(&mut self, step: &StepReport) {
        self.inner.step(step);
    }

    fn epoch_end(&mut self, epoch: &EpochReport) {
        self.inner.epoch_end(epoch);
        self.flush_or_warn("at the end of the next epoch");
    }

    fn metrics(&mut self, line: &Value) {
        self.inner.metrics(line);
        let Some((step, values)) = ferrotune_train::metric_scalars(line) else { return };
        let timestamp = now_ms();
        for (key, value) in values.into_iter().filter(|(_, v)| v.is_finite()) {
            self.pending.push(json!({ "key": key, "value": value, "timestamp": timestamp, "step": step }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_params_within_mlflows_limits() {
        let long = "x".repeat(MAX_PARAM_CHARS + 10);
        let params = params_of(&json!({ "lr": 0.001, "task": "ner", "targets": long, "nested": {"a": 1} }));
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("lr"), "0.001");
        assert_eq!(get("task"), "ner");
        assert_eq!(get("targets").len(), MAX_PARAM_CHARS);
        assert_eq!(get("nested"), "{\"a\":1}");
    }
}
