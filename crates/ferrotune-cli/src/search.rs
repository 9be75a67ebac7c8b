//! `ferrotune search`: a hyperparameter study. The study (`ferrotune-study`)
//! says which options each trial tries and whether it goes on after each
//! epoch; here each trial is a `ferrotune train` process of its own (its
//! share of the threads, its log, its folder), whose `metrics.jsonl` is
//! read as it grows. After each epoch the process waits for the study's
//! go-ahead (`--epoch-gate`); a pruned trial's process is stopped there,
//! having computed nothing beyond the epoch it was pruned at. Trials
//! die with the study (a killed study leaves no training behind) and a
//! resumed study resumes its running trial from its checkpoint.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ferrotune_data::atomic::write_bytes_atomic;
use ferrotune_study::{study_page, trials_tsv, Decision, Study, StudyConfig, TrialState};

use crate::UsageError;

/// How often a running trial's `metrics.jsonl` is read.
const POLL: Duration = Duration::from_millis(200);

/// The journal's name in the study folder.
pub(crate) const JOURNAL: &str = "study.jsonl";

/// Options of `ferrotune search`.
#[derive(Args)]
pub struct SearchArgs {
    /// The study file (TOML): trials, seed, sampler (random, tpe), pruner (none, median, asha),
    /// output, [train] (the options every trial shares, as `train --config` keys) and [space]
    /// (e.g. lr = { type = "float", low = 1e-5, high = 3e-4, log = true }).
    #[arg(long)]
    config: PathBuf,
    /// The study's folder [default: `output` of the study file].
    #[arg(long)]
    output: Option<PathBuf>,
    /// Go on with the study in the output folder: its journal says what was done.
    #[arg(long)]
    resume: bool,
    /// Trials run at once (the threads are split between them).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Threads in all [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `ferrotune search`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut config = StudyConfig::read(&args.config)?;
    check_train_table(&config, &args.config)?;
    let output = match args.output.clone().or_else(|| config.output.clone()) {
        Some(dir) => dir,
        None => return Err(UsageError("--output is required (as a flag or `output` in the study file)".into()).into()),
    };
    if args.parallel == 0 || args.threads == Some(0) {
        return Err(UsageError("--parallel and --threads must be at least 1".into()).into());
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_trial = (threads / args.parallel).max(1);
    config.output = Some(output.clone());
    std::fs::create_dir_all(&output).with_context(|| output.display().to_string())?;
    let journal = output.join(JOURNAL);
    let mut study = if args.resume { Study::resume(config, &journal)? } else { Study::create(config, &journal)? };
    let mut runner = Runner { output: output.clone(), threads: per_trial, running: Vec::new() };
    // Trials a killed study left running go first, from their checkpoints.
    let mut pending = study.running();
    loop {
        while runner.running.len() < args.parallel {
            let number = match pending.first() {
                Some(_) => pending.remove(0),
                None => match study.start_trial()? {
                    Some(number) => number,
                    None => break,
                },
            };
            runner.start(&mut study, number)?;
        }
        if runner.running.is_empty() {
            break;
        }
        std::thread::sleep(POLL);
        runner.poll(&mut study)?;
    }
    write_results(&study, &output)?;
    print!("{}", trials_tsv(&study));
    let (done, budget) = study.epochs();
    match study.best() {
        Some(best) => eprintln!(
            "best: trial {} with dev score {:.4}; {done} of {budget} epochs trained ({:.0}%); {} written",
            best.number,
            best.value().unwrap_or(f64::NAN),
            100.0 * done as f64 / budget.max(1) as f64,
            output.join("best.toml").display()
        ),
        None => eprintln!("no trial completed; see {}", output.join("study.html").display()),
    }
    Ok(())
}

/// Checks the study file's `[train]` table: keys `ferrotune train --config`
/// takes, none the study sets itself, and the files it names.
fn check_train_table(config: &StudyConfig, path: &Path) -> anyhow::Result<()> {
    let run_keys = crate::train::run_keys();
    let options = serde_json::to_value(ferrotune_train::TrainOptions::default())?;
    let bad = |key: &str, message: String| anyhow::anyhow!("{}: train.{key}: {message}", path.display());
    for key in config.train.keys() {
        if ["output", "threads", "resume"].contains(&key.as_str()) {
            return Err(bad(key, "set by the study for each trial (in <output>/trials/<number>)".into()));
        }
        if !run_keys.contains(key) && options.get(key).is_none() {
            return Err(bad(key, "not a `ferrotune train --config` key".into()));
        }
    }
    for key in ["model", "train", "dev"] {
        let Some(value) = config.train.get(key) else {
            let why = if key == "dev" { "trials are scored and pruned on the dev set" } else { "every trial needs it" };
            return Err(bad(key, format!("missing ({why})")));
        };
        let file = value.as_str().ok_or_else(|| bad(key, "expected a path".into()))?;
        if !Path::new(file).exists() {
            return Err(bad(key, format!("{file}: no such file or folder")));
        }
    }
    Ok(())
}

/// A trial's training process.
struct Running {
    number: usize,
    child: Child,
    /// Its standard input: after each epoch it waits there for the epoch's
    /// number (`--epoch-gate`), sent when the study lets it go on.
    gate: ChildStdin,
    /// The run's output folder (`metrics.jsonl`, `model/`, `checkpoint/`).
    run_dir: PathBuf,
    /// Complete lines of `metrics.jsonl` already read.
    lines_read: usize,
}

/// Starts and follows the trials' processes.
struct Runner {
    output: PathBuf,
    threads: usize,
    running: Vec<Running>,
}

impl Runner {
    fn trial_dir(&self, number: usize) -> PathBuf {
        self.output.join("trials").join(format!("{number:03}"))
    }

    /// Starts trial `number`: its `train.toml` (the shared options, its own,
    /// its output folder), then `ferrotune train` on it, resuming from a
    /// checkpoint a killed study left.
    fn start(&mut self, study: &mut Study, number: usize) -> anyhow::Result<()> {
        let dir = self.trial_dir(number);
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let trial = study.trial(number);
        let mut table = study.config().train.clone();
        for (key, value) in &trial.params {
            table.insert(key.clone(), toml::Value::try_from(value)?);
        }
        table.insert("output".into(), toml::Value::String(run_dir.display().to_string()));
        let config = dir.join("train.toml");
        write_bytes_atomic(&config, toml::to_string(&table)?.as_bytes())
            .with_context(|| config.display().to_string())?;
        let resume = ferrotune_train::checkpoint::find(&run_dir).is_some();
        if !resume && run_dir.exists() {
            // Started but no epoch ended: nothing to keep.
            std::fs::remove_dir_all(&run_dir).with_context(|| run_dir.display().to_string())?;
        }
        let log_path = dir.join("train.log");
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| log_path.display().to_string())?;
        writeln!(log, "--- trial {number}{}", if resume { ", resumed" } else { "" })?;
        let mut command = Command::new(own_binary()?);
        command.arg("train").arg("--config").arg(&config).arg("--threads").arg(self.threads.to_string());
        command.arg("--epoch-gate");
        if resume {
            command.arg("--resume");
        }
        command.stdin(Stdio::piped()).stdout(log.try_clone()?).stderr(log);
        die_with_parent(&mut command);
        let mut child = command.spawn().context("starting a trial's `ferrotune train`")?;
        let gate = child.stdin.take().expect("standard input is piped");
        eprintln!("trial {number}{}: {}", if resume { " (resumed)" } else { "" }, trial.options_text());
        self.running.push(Running { number, child, gate, run_dir, lines_read: 0 });
        Ok(())
    }

    /// Reads what each running trial logged since last time, reports its
    /// epochs to the study (stopping a pruned trial) and ends trials whose
    /// process has exited.
    fn poll(&mut self, study: &mut Study) -> anyhow::Result<()> {
        let mut index = 0;
        while index < self.running.len() {
            let exited = self.running[index].child.try_wait()?;
            // Lines written before the exit are all there now.
            self.read_epochs(study, index)?;
            let number = self.running[index].number;
            let state = study.trial(number).state;
            if exited.is_some() || state != TrialState::Running {
                let mut trial = self.running.remove(index);
                match exited {
                    Some(status) if state == TrialState::Running => {
                        if status.success() && !study.trial(number).scores.is_empty() {
                            study.complete(number)?;
                        } else {
                            let log = self.trial_dir(number).join("train.log");
                            study.fail(number, &format!("`ferrotune train` {status}: {}", last_error(&log)))?;
                        }
                    }
                    Some(_) => {}
                    None => {
                        // Pruned: stop its training now.
                        trial.child.kill().ok();
                        trial.child.wait().ok();
                    }
                }
                self.end(study, trial.number, &trial.run_dir)?;
                continue;
            }
            index += 1;
        }
        Ok(())
    }

    /// Reports the epoch lines of trial `index`'s `metrics.jsonl` not read
    /// yet, up to one the study prunes it at.
    fn read_epochs(&mut self, study: &mut Study, index: usize) -> anyhow::Result<()> {
        let trial = &mut self.running[index];
        let path = trial.run_dir.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        // A line being written has no newline yet.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for (i, line) in complete.lines().enumerate().skip(trial.lines_read) {
            trial.lines_read = i + 1;
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}, line {}", path.display(), i + 1))?;
            if value["type"] != "epoch" {
                continue;
            }
            let (Some(epoch), Some(score)) = (value["epoch"].as_u64(), value["dev_score"].as_f64()) else {
                bail!("{}, line {}: an epoch line without \"epoch\" and \"dev_score\"", path.display(), i + 1);
            };
            let known = study.trial(trial.number).score_at(epoch as usize).is_some();
            let decision = study.report(trial.number, epoch as usize, score)?;
            let pruned = decision == Decision::Prune;
            if !known {
                let how = if pruned { ": pruned" } else { "" };
                eprintln!("trial {}: epoch {epoch} dev score {score:.4}{how}", trial.number);
            }
            if pruned {
                break;
            }
            // A process that has already ended reads no more: nothing to tell.
            writeln!(trial.gate, "{epoch}").and_then(|()| trial.gate.flush()).ok();
        }
        Ok(())
    }

    /// After a trial ends: its checkpoints go (the model stays), the
    /// results are rewritten.
    fn end(&self, study: &Study, number: usize, run_dir: &Path) -> anyhow::Result<()> {
        let trial = study.trial(number);
        let how = match trial.state {
            TrialState::Complete => format!("complete, dev score {:.4}", trial.value().unwrap_or(f64::NAN)),
            TrialState::Pruned => format!("pruned after epoch {}", trial.scores.len()),
            _ => format!("failed: {}", trial.message.as_deref().unwrap_or_default()),
        };
        eprintln!("trial {number}: {how}");
        for name in ["checkpoint", "checkpoint.new", "checkpoint.old"] {
            let dir = run_dir.join(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
            }
        }
        write_results(study, &self.output)
    }
}

/// This very binary, to run the trials: on Linux through `/proc/self/exe`,
/// which still names it when its file has been replaced (a rebuild during
/// a study), so every trial runs the study's own version.
fn own_binary() -> anyhow::Result<PathBuf> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe().context("finding the ferrotune binary")
}

/// Makes the child process die when this one does (Linux), so a killed
/// study leaves no trial training on.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(PR_SET_PDEATHSIG), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// The last `error:` line of a trial's log (or its last line).
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.iter().rev().find(|l| l.starts_with("error:")).or(lines.last()).map_or("no output".into(), |l| l.to_string())
}

/// The study's results, rewritten after each trial: `best.toml` (a
/// `ferrotune train --config` file), `trials.tsv`, `study.html`.
fn write_results(study: &Study, output: &Path) -> anyhow::Result<()> {
    let write = |name: &str, text: &str| {
        let path = output.join(name);
        write_bytes_atomic(&path, text.as_bytes()).with_context(|| path.display().to_string())
    };
    write("study.html", &study_page(study))?;
    write("trials.tsv", &trials_tsv(study))?;
    if let Some(mut best) = study.best_options() {
        best.insert("output".into(), toml::Value::String(output.join("best").display().to_string()));
        let trial = study.best().expect("best options come from the best trial");
        let head = format!(
            "# The best trial of the study in {} (trial {}, dev score {:.4}; its model: {}).\n",
            output.display(),
            trial.number,
            trial.value().unwrap_or(f64::NAN),
            output.join("trials").join(format!("{:03}", trial.number)).join("run").join("model").display()
        );
        write("best.toml", &(head + &toml::to_string(&best)?))?;
    }
    Ok(())
}
