//! `probes`: load settings that exclude each other, URLs that parse (also for notifications
//! and HTTP steps), and what to say of a probe name that does not exist.

use crate::plan::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::plan::interpolate::{self, Reference};
use crate::plan::model::ProbeKind;
use crate::plan::span::join;

use super::{Checker, conflict};

impl Checker<'_> {
    pub(super) fn probes(&mut self) {
        for (name, probe) in &self.plan.probes {
            let pointer = join("/probes", name);
            if let Some(ProbeKind::Load(load)) = probe.kind() {
                let load_pointer = format!("{pointer}/load");
                if load.delay.is_some() && load.rate.is_some() {
                    self.push(conflict(&load_pointer, "rate", "delay", "a load probe paces by `delay` (closed model) or by `rate` (open model), not both"));
                }
                if load.requests.is_some() && load.duration.is_some() {
                    self.push(conflict(&load_pointer, "duration", "requests", "a load probe sends a number of `requests` or runs for a `duration`, not both"));
                }
                for (target, url) in &load.targets {
                    self.url(&join(&format!("{load_pointer}/targets"), target), url);
                }
            }
            match probe.kind() {
                Some(ProbeKind::Http(http)) => self.url(&format!("{pointer}/http/url"), &http.url),
                Some(ProbeKind::Prometheus(prom)) => {
                    self.url(&format!("{pointer}/prometheus/url"), &prom.url);
                }
                _ => {}
            }
        }
        for (i, notify) in self.plan.notify.iter().enumerate() {
            self.url(&format!("/notify/{i}/url"), &notify.url);
        }
        let steps = self.all_steps();
        for (pointer, step) in steps {
            if let Some(http) = &step.http {
                self.url(&format!("{pointer}/http/url"), &http.url);
            }
        }
    }

    /// A URL must parse once `vars` are filled; parts from `env`, `stage` or `run` stand in as
    /// placeholders.
    fn url(&mut self, pointer: &str, url: &str) {
        let before = self.out.len();
        self.url_parses(pointer, url);
        // The URL was filled from `vars`: a mended var makes its finding moot.
        for d in &mut self.out[before..] {
            d.add_depends(["/vars".to_owned()]);
        }
    }

    fn url_parses(&mut self, pointer: &str, url: &str) {
        let Ok(filled) = interpolate::fill(url, |reference| match reference {
            Reference::Var(name) => self.plan.vars.get(name).map(|v| v.0.clone()),
            Reference::Env(_) => None,
            Reference::StageName | Reference::RunId => Some("x".into()),
            Reference::StageTraffic => Some("5".into()),
        }) else {
            return; // An env reference (a whole secret URL), or a bad placeholder reported elsewhere.
        };
        match url::Url::parse(&filled.value) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
            Ok(parsed) => self.push(Diagnostic::error(
                Code::BadUrl,
                pointer,
                format!(
                    "`{}` is not an http or https URL (scheme `{}`)",
                    filled.redacted,
                    parsed.scheme()
                ),
            )),
            Err(error) => self.push(
                Diagnostic::error(
                    Code::BadUrl,
                    pointer,
                    format!("`{}` is not a URL: {error}", filled.redacted),
                )
                .with_help("write a full URL such as `http://127.0.0.1:8080/health`"),
            ),
        }
    }

    pub(super) fn unknown_probe(&mut self, pointer: &str, name: &str) {
        let help = self.probe_help(name);
        self.push(
            Diagnostic::error(
                Code::UnknownProbe,
                pointer,
                format!("probe `{name}` is not defined in `probes`"),
            )
            .depending_on(join("/probes", name))
            .with_help(help),
        );
    }

    /// The nodes that decide which metrics a probe produces (see `Catalog::of`): its kind's
    /// list of metrics, queries or targets, and the kind keys it does not set (a misspelt or
    /// dropped kind would change them all). A repair elsewhere in the probe (a bad `timeout`,
    /// `requests: 0`) leaves its metrics as they are.
    pub(super) fn catalog_nodes(&self, probe: &str) -> Vec<String> {
        let pointer = join("/probes", probe);
        let Some(model) = self.plan.probes.get(probe) else {
            return vec![pointer];
        };
        let mut nodes: Vec<String> = match model.kind() {
            Some(ProbeKind::Load(_)) => vec![format!("{pointer}/load/targets")],
            Some(ProbeKind::Http(_)) => vec![format!("{pointer}/http/metrics")],
            Some(ProbeKind::Prometheus(_)) => vec![format!("{pointer}/prometheus/queries")],
            Some(ProbeKind::Command(_)) | None => return vec![pointer],
        };
        let set = [
            ("command", model.command.is_some()),
            ("http", model.http.is_some()),
            ("prometheus", model.prometheus.is_some()),
            ("load", model.load.is_some()),
        ];
        nodes.extend(
            set.iter()
                .filter(|(_, present)| !present)
                .map(|(key, _)| format!("{pointer}/{key}")),
        );
        // A repair at the probe's own node (no kind, or two) is an ancestor of these: covered.
        nodes
    }

    /// What to write instead of a probe name that does not exist.
    pub(super) fn probe_help(&self, name: &str) -> String {
        match did_you_mean(name, &self.probe_names, "") {
            Some(help) => help,
            None if self.probe_names.is_empty() => "define it under `probes`".to_owned(),
            None => format!("defined probes: {}", self.probe_names.join(", ")),
        }
    }
}
