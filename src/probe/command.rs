//! The `command` probe: a program (argv, no shell) that prints a JSON object of numbers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::probe::{Sample, readings_from_json, tail};
use crate::redact::Redactor;

/// The most a probe's stdout may print: a JSON object of a few numbers.
const MAX_OUTPUT: u64 = 1024 * 1024;
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// A command probe with its argv already interpolated.
#[derive(Debug, Clone)]
pub struct CommandProbe {
    pub name: String,
    pub argv: Vec<String>,
    /// The argv as it may be printed (`env` values as `***`).
    pub shown: Vec<String>,
    /// The plan's folder: the working directory, and the base of `./relative` programs.
    pub dir: PathBuf,
    pub timeout: Duration,
    /// Secrets to take out of the program's output before it is cut and shown.
    pub redact: Arc<Redactor>,
}

/// The program to execute: a `./relative` program is resolved against the plan's folder.
pub fn program_path(dir: &Path, program: &str) -> PathBuf {
    if program.starts_with("./") || program.starts_with("../") {
        dir.join(program)
    } else {
        PathBuf::from(program)
    }
}

impl CommandProbe {
    /// The probe a plan's `command` describes: each argument filled in without splitting.
    pub fn build(
        argv: &[crate::plan::model::ArgvItem],
        setup: &super::Setup<'_>,
    ) -> Result<CommandProbe, String> {
        let filled = argv
            .iter()
            .map(|a| (setup.fill)(&a.0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CommandProbe {
            name: setup.name.to_owned(),
            argv: filled.iter().map(|f| f.0.clone()).collect(),
            shown: filled.into_iter().map(|f| f.1).collect(),
            dir: setup.dir.to_path_buf(),
            timeout: setup.timeout,
            redact: Arc::clone(setup.redact),
        })
    }

    pub async fn sample(&self) -> Sample {
        let mut group = None;
        let result = tokio::time::timeout(self.timeout, self.execute(&mut group)).await;
        // Whatever the program left in its group goes with it (SIGTERM, then SIGKILL after
        // the grace), timed out or not.
        if let Some(group) = &group {
            crate::process::Group::end(group).await;
        }
        if crate::process::shutting_down() {
            // The runner is going down and ended the program: that is no sample of the
            // service, and must not count as a probe error after a resume.
            std::future::pending::<()>().await;
        }
        match result {
            Ok(Ok(sample)) => sample,
            Ok(Err(error)) => Sample::failed(&self.name, error),
            Err(_) => Sample::failed(
                &self.name,
                format!(
                    "`{}` timed out after {}",
                    self.shown.join(" "),
                    crate::plan::units::format_duration(self.timeout)
                ),
            ),
        }
    }

    async fn execute(&self, group: &mut Option<crate::process::Group>) -> Result<Sample, String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err("empty command".into());
        };
        let mut child = tokio::process::Command::new(program_path(&self.dir, program))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", self.shown[0]))?;
        *group = Some(crate::process::Group::new(child.id().unwrap_or(0)));
        // Read to the ends in the background (a chatty program never blocks on a full pipe),
        // and when the program exits: a child it left behind (`kubectl port-forward &`) may
        // hold its output open, and is ended with its group.
        let output = crate::process::Collector::start(
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
            crate::process::Keep::Head(MAX_OUTPUT_BYTES),
            crate::process::Keep::Tail(64 * 1024),
        );
        let status = child.wait().await;
        let (stdout, stderr) = output.finish(crate::process::LINGER).await;
        let status = status.map_err(|e| format!("waiting for the program: {e}"))?;
        if stdout.cut() {
            return Err(format!(
                "`{}` printed {} bytes; a probe prints a JSON object of at most {MAX_OUTPUT} bytes",
                self.shown.join(" "),
                stdout.total
            ));
        }
        let (stdout, stderr) = (stdout.bytes, stderr.bytes);
        if !status.success() {
            let stderr = self.redact.redact(&String::from_utf8_lossy(&stderr));
            return Err(format!(
                "`{}` failed ({status}){}",
                self.shown.join(" "),
                match tail(&stderr, 500) {
                    "" => String::new(),
                    t => format!(": {t}"),
                }
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&stdout).map_err(|e| {
            format!(
                "`{}` did not print a JSON object: {e}: {}",
                self.shown.join(" "),
                tail(&self.redact.redact(&String::from_utf8_lossy(&stdout)), 200)
            )
        })?;
        Ok(Sample::ok(&self.name, readings_from_json(&value)?))
    }
}

impl super::Probe for CommandProbe {
    fn sample<'a>(
        &'a self,
        _client: &'a reqwest::Client,
    ) -> futures_util::future::BoxFuture<'a, Sample> {
        Box::pin(CommandProbe::sample(self))
    }

    fn deadline(&self, _limit: Duration) -> Option<Duration> {
        None
    }
}
