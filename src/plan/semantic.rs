//! Checks of meaning, on a plan the schema accepted: references resolve, metrics exist in the
//! right units, traffic increases, offsets fit the bake, scripts exist.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic, Target};
use crate::plan::expr::{self, Expr, Rhs};
use crate::plan::interpolate::{self, Reference};
use crate::plan::metrics::{Catalog, MetricUnit};
use crate::plan::model::{Argv, Condition, Gate, GateAt, Plan, Probe, ProbeKind, Stage, Step};
use crate::plan::schema::did_you_mean;
use crate::plan::span::join;
use crate::plan::units::{PlanDuration, format_duration};
use crate::plan::window::{Window, WindowError};

/// Every semantic problem of a plan. `base` is the plan's folder when the filesystem may be
/// consulted (scripts beside the plan, programs on PATH).
pub fn check(plan: &Plan, document: &Value, base: Option<&Path>) -> Vec<Diagnostic> {
    let mut checker = Checker {
        plan,
        out: Vec::new(),
        probe_names: plan.probes.keys().cloned().collect(),
        gate_names: plan.gates.keys().cloned().collect(),
        catalogs: plan
            .probes
            .iter()
            .map(|(name, probe)| (name.as_str(), Catalog::of(probe)))
            .collect(),
        parsed: HashMap::new(),
    };
    checker.schedule();
    checker.probes();
    checker.gates();
    checker.preflight();
    checker.stages();
    checker.unused();
    checker.secrets_in_argv();
    crate::plan::evidence::check(plan, &mut checker.out);
    interpolations(plan, document, &mut checker.out);
    crate::plan::secret_headers::check(document, &mut checker.out);
    if let Some(base) = base {
        checker.argvs(base);
    }
    checker.out
}

struct Checker<'a> {
    plan: &'a Plan,
    out: Vec<Diagnostic>,
    probe_names: Vec<String>,
    gate_names: Vec<String>,
    catalogs: HashMap<&'a str, Catalog>,
    /// Parsed conditions of each gate (only those that parse).
    parsed: HashMap<&'a str, Vec<Expr>>,
}

impl<'a> Checker<'a> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }

    fn schedule(&mut self) {
        let Some(schedule) = &self.plan.schedule else {
            return;
        };
        if let Some(instant) = &schedule.not_before
            && let Err(error) = chrono::DateTime::parse_from_rfc3339(instant)
        {
            self.push(
                Diagnostic::error(
                    Code::BadTimestamp,
                    "/schedule/not_before",
                    format!("`{instant}` is not an RFC 3339 instant: {error}"),
                )
                .with_help("write e.g. `2025-10-22T14:00:00Z` (a date, `T`, a time and a zone)"),
            );
        }
        if let Some(window) = &schedule.window
            && let Err(error) = Window::parse(window)
        {
            self.push(window_error(window, &error));
        }
        if let Some(zone) = &schedule.timezone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            let names: Vec<String> = chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| tz.name().to_owned())
                .collect();
            let mut d = Diagnostic::error(
                Code::BadTimezone,
                "/schedule/timezone",
                format!("`{}` is not an IANA time zone", clip(zone)),
            );
            d = d.with_help(match did_you_mean(zone, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "use a name such as `UTC`, `Europe/Berlin` or `Asia/Seoul`".into(),
            });
            self.push(d);
        }
    }

    fn probes(&mut self) {
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

    fn gates(&mut self) {
        let plan = self.plan;
        for (name, gate) in &plan.gates {
            let pointer = join("/gates", name);
            let mut parsed = Vec::new();
            for (k, condition) in gate.require.iter().enumerate() {
                let cond_pointer = format!("{pointer}/require/{k}");
                if let Some(expr) = self.condition(&cond_pointer, condition, None) {
                    parsed.push(expr);
                }
                self.streak(&cond_pointer, condition, gate);
            }
            self.parsed.insert(name.as_str(), parsed);
        }
    }

    fn streak(&mut self, pointer: &str, condition: &Condition, gate: &Gate) {
        let Condition::Detailed(spec) = condition else {
            return;
        };
        if spec.consecutive.is_some() && spec.within.is_some() {
            self.push(conflict(
                pointer,
                "within",
                "consecutive",
                "a condition fails after `consecutive` violations in a row or after `within` M of N checks, not both",
            ));
        }
        if let Some(within) = spec.within
            && within.violations > within.checks
        {
            self.push(
                Diagnostic::error(
                    Code::StreakRange,
                    format!("{pointer}/within/violations"),
                    format!(
                        "`within` asks for {} violations in the last {} checks, which can never happen",
                        within.violations, within.checks
                    ),
                )
                .with_help("`violations` must be at most `checks`"),
            );
        }
        if gate.at == GateAt::End && (spec.consecutive.is_some() || spec.within.is_some()) {
            let key = if spec.consecutive.is_some() {
                "consecutive"
            } else {
                "within"
            };
            self.push(
                Diagnostic::error(
                    Code::StreakRange,
                    format!("{pointer}/{key}"),
                    format!(
                        "an `at: end` gate is evaluated once, so `{key}` can never count past one"
                    ),
                )
                .at_key()
                .depending_on(format!(
                    "{}/at",
                    pointer.split("/require/").next().unwrap_or_default()
                ))
                .with_help("move the condition to an `at: every_check` gate, or drop the streak"),
            );
        }
    }

    /// Parses a condition and checks its metrics; `only_probe` limits them to one probe
    /// (preflight).
    fn condition(
        &mut self,
        pointer: &str,
        condition: &Condition,
        only_probe: Option<&str>,
    ) -> Option<Expr> {
        let text_pointer = match condition {
            Condition::Plain(_) => pointer.to_owned(),
            Condition::Detailed(_) => format!("{pointer}/check"),
        };
        let text = condition.check();
        let expr = match expr::parse(text) {
            Ok(expr) => expr,
            Err(error) => {
                self.push(
                    Diagnostic::error(
                        Code::BadExpression,
                        &text_pointer,
                        format!("bad condition `{text}`: {}", error.message),
                    )
                    .with_target(Target::Within {
                        start: error.start,
                        len: error.len,
                    })
                    .with_help("write `METRIC OP VALUE` or `METRIC OP METRIC * FACTOR`, e.g. `load.canary.p95 <= load.legacy.p95 * 1.2`"),
                );
                return None;
            }
        };
        let units = self.metric_units(&text_pointer, &expr, only_probe)?;
        self.units_agree(&text_pointer, text, &expr, &units)
            .then_some(expr)
    }

    /// The unit of each metric a condition reads, or `None` (reported) when one does not resolve.
    fn metric_units(
        &mut self,
        text_pointer: &str,
        expr: &Expr,
        only_probe: Option<&str>,
    ) -> Option<Vec<MetricUnit>> {
        let mut units = Vec::new();
        let mut ok = true;
        for metric in expr.metrics() {
            let within = Target::Within {
                start: metric.start,
                len: metric.name.len(),
            };
            let probe = metric.probe();
            if let Some(only) = only_probe
                && probe != only
            {
                self.push(
                    Diagnostic::error(
                        Code::ProbeNotRun,
                        text_pointer,
                        format!(
                            "`{}` reads probe `{probe}`, but this check runs only `{only}`",
                            metric.name
                        ),
                    )
                    .with_target(within)
                    .depending_on(format!(
                        "{}/probe",
                        text_pointer.split("/require/").next().unwrap_or_default()
                    )),
                );
                ok = false;
                continue;
            }
            let Some(catalog) = self.catalogs.get(probe) else {
                let mut d = Diagnostic::error(
                    Code::UnknownProbe,
                    text_pointer,
                    format!(
                        "`{}` reads probe `{probe}`, which is not defined in `probes`",
                        metric.name
                    ),
                )
                .with_target(within)
                .depending_on(join("/probes", probe));
                d.help = Some(self.probe_help(probe));
                self.push(d);
                ok = false;
                continue;
            };
            let name = metric.within_probe();
            if let Some(unit) = catalog.unit(name) {
                units.push(unit);
            } else {
                let names = catalog.names();
                let help = match did_you_mean(name, &names) {
                    Some(best) => format!("did you mean `{probe}.{best}`?"),
                    None => format!(
                        "probe `{probe}` produces: {}",
                        names
                            .iter()
                            .map(|n| format!("{probe}.{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let mut d = Diagnostic::error(
                    Code::UnknownMetric,
                    text_pointer,
                    format!("probe `{probe}` cannot produce `{}`", metric.name),
                )
                .with_target(within)
                .with_help(help);
                d.add_depends(self.catalog_nodes(probe));
                self.push(d);
                ok = false;
            }
        }
        ok.then_some(units)
    }

    /// Whether the threshold's unit fits the metric (reported when not).
    fn units_agree(
        &mut self,
        text_pointer: &str,
        text: &str,
        expr: &Expr,
        units: &[MetricUnit],
    ) -> bool {
        let before = self.out.len();
        let agree = self.units_agree_reported(text_pointer, text, expr, units);
        let nodes: Vec<String> = expr
            .metrics()
            .flat_map(|m| self.catalog_nodes(m.probe()))
            .collect();
        for d in &mut self.out[before..] {
            d.add_depends(nodes.iter().cloned());
        }
        agree
    }

    fn units_agree_reported(
        &mut self,
        text_pointer: &str,
        text: &str,
        expr: &Expr,
        units: &[MetricUnit],
    ) -> bool {
        match (&expr.rhs, units) {
            (Rhs::Quantity { unit, start, .. }, [left]) if !left.accepts(*unit) => {
                self.push(
                    Diagnostic::error(
                        Code::UnitMismatch,
                        text_pointer,
                        format!(
                            "`{}` is {}, but the threshold is written as a {}",
                            expr.metric.name,
                            left.describe(),
                            match unit {
                                crate::plan::units::LiteralUnit::Duration => "duration",
                                _ => "percentage",
                            }
                        ),
                    )
                    .with_target(Target::Within {
                        start: *start,
                        len: text.len() - start,
                    })
                    .with_help("durations (`200ms`) compare with latencies, percentages (`0.5%`) with rates"),
                );
                false
            }
            (Rhs::Metric { metric, .. }, [left, right]) if !left.comparable(*right) => {
                self.push(
                    Diagnostic::error(
                        Code::UnitMismatch,
                        text_pointer,
                        format!(
                            "`{}` is {} but `{}` is {}: they cannot be compared",
                            expr.metric.name,
                            left.describe(),
                            metric.name,
                            right.describe()
                        ),
                    )
                    .with_target(Target::Within {
                        start: metric.start,
                        len: metric.name.len(),
                    }),
                );
                false
            }
            _ => true,
        }
    }

    fn preflight(&mut self) {
        let plan = self.plan;
        let mut seen = HashMap::new();
        for (i, item) in plan.preflight.iter().enumerate() {
            let pointer = format!("/preflight/{i}");
            if let Some(first) = seen.insert(item.name.as_str(), i) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("{pointer}/name"),
                        format!(
                            "preflight check `{}` is already defined (preflight[{first}])",
                            item.name
                        ),
                    )
                    .depending_on(format!("/preflight/{first}/name"))
                    .with_help("give each preflight check its own name: reports refer to it"),
                );
            }
            let Some(probe_name) = &item.probe else {
                for key in ["with", "require"] {
                    let set = if key == "with" {
                        item.with.is_some()
                    } else {
                        !item.require.is_empty()
                    };
                    if set {
                        self.push(
                            Diagnostic::error(
                                Code::Conflict,
                                format!("{pointer}/{key}"),
                                format!("`{key}` applies to a `probe`, and this check has none"),
                            )
                            .at_key(),
                        );
                    }
                }
                continue;
            };
            let Some(probe) = plan.probes.get(probe_name) else {
                self.unknown_probe(&format!("{pointer}/probe"), probe_name);
                continue;
            };
            if let Some(with) = &item.with {
                match probe.kind() {
                    Some(ProbeKind::Load(_)) => {
                        if with.delay.is_some() && with.rate.is_some() {
                            self.push(conflict(&format!("{pointer}/with"), "rate", "delay", "pace by `delay` or by `rate`, not both"));
                        }
                    }
                    _ => self.push(
                        Diagnostic::error(
                            Code::Conflict,
                            format!("{pointer}/with"),
                            format!("`with` overrides load settings, but probe `{probe_name}` is not a load probe"),
                        )
                        .at_key()
                        .depending_on(join("/probes", probe_name)),
                    ),
                }
            }
            for (k, condition) in item.require.iter().enumerate() {
                self.condition(
                    &format!("{pointer}/require/{k}"),
                    condition,
                    Some(probe_name),
                );
            }
        }
    }

    fn unknown_probe(&mut self, pointer: &str, name: &str) {
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
    fn catalog_nodes(&self, probe: &str) -> Vec<String> {
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
    fn probe_help(&self, name: &str) -> String {
        match did_you_mean(name, &self.probe_names) {
            Some(best) => format!("did you mean `{best}`?"),
            None if self.probe_names.is_empty() => "define it under `probes`".to_owned(),
            None => format!("defined probes: {}", self.probe_names.join(", ")),
        }
    }

    fn stages(&mut self) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        // References made by `defaults` are reported once, at `defaults`.
        if let Some(defaults) = defaults {
            if let Some(checks) = &defaults.checks {
                self.check_probes("/defaults/checks/probes", &checks.probes);
            }
            if let Some(gates) = &defaults.gates {
                self.check_gates("/defaults/gates", gates);
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut previous: Option<f64> = None;
        for (i, stage) in plan.stages.iter().enumerate() {
            let pointer = format!("/stages/{i}");
            if let Some(first) = names.insert(stage.name.as_str(), i) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("{pointer}/name"),
                        format!(
                            "stage `{}` is already defined (stages[{first}])",
                            stage.name
                        ),
                    )
                    .depending_on(format!("/stages/{first}/name"))
                    .with_help(
                        "stage names must be unique: the journal and `approve --stage` use them",
                    ),
                );
            }
            if let Some(before) = previous
                && stage.traffic <= before
            {
                self.push(
                    Diagnostic::error(
                        Code::TrafficOrder,
                        format!("{pointer}/traffic"),
                        format!(
                            "traffic must increase from stage to stage: `{}` has {}%, after {}% in stages[{}]",
                            stage.name,
                            stage.traffic,
                            before,
                            i - 1
                        ),
                    )
                    .depending_on(format!("/stages/{}/traffic", i - 1))
                    .with_help("to hold a share longer, lengthen the earlier stage's `bake`"),
                );
            }
            previous = Some(stage.traffic);
            if let Some(checks) = &stage.checks {
                self.check_probes(&format!("{pointer}/checks/probes"), &checks.probes);
            }
            if let Some(gates) = &stage.gates {
                self.check_gates(&format!("{pointer}/gates"), gates);
            }
            let before = self.out.len();
            self.stage_timing(&pointer, stage);
            // Offsets and counts read the stage's bake and (maybe inherited) checks.
            let checks = checks_pointer(&pointer, stage);
            for d in &mut self.out[before..] {
                d.add_depends([format!("{pointer}/bake"), checks.clone()]);
            }
            self.stage_gates(&pointer, stage);
        }
        if let Some(last) = plan.stages.last()
            && last.traffic < 100.0
        {
            self.push(
                Diagnostic::warning(
                    Code::PartialRollout,
                    format!("/stages/{}/traffic", plan.stages.len() - 1),
                    format!(
                        "the last stage, `{}`, sends only {}% of traffic to the new version",
                        last.name, last.traffic
                    ),
                )
                .with_help("end with a `traffic: 100` stage to complete the rollout"),
            );
        }
    }

    fn check_probes(&mut self, pointer: &str, probes: &[String]) {
        for (j, name) in probes.iter().enumerate() {
            if !self.plan.probes.contains_key(name) {
                self.unknown_probe(&format!("{pointer}/{j}"), name);
            }
        }
    }

    fn check_gates(&mut self, pointer: &str, gates: &[String]) {
        for (j, name) in gates.iter().enumerate() {
            if !self.plan.gates.contains_key(name) {
                let mut d = Diagnostic::error(
                    Code::UnknownGate,
                    format!("{pointer}/{j}"),
                    format!("gate `{name}` is not defined in `gates`"),
                )
                .depending_on(join("/gates", name));
                if let Some(best) = did_you_mean(name, &self.gate_names) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                self.push(d);
            }
        }
    }

    fn stage_timing(&mut self, pointer: &str, stage: &Stage) {
        let defaults = self.plan.defaults.as_ref();
        let Some(checks) = stage.effective_checks(defaults) else {
            return;
        };
        let inherited = stage.checks.is_none();
        let bake = stage.bake.as_duration();
        for (j, at) in checks.at.iter().enumerate() {
            if at.as_duration() > bake {
                let (at_pointer, note) = if inherited {
                    (format!("{pointer}/bake"), " (from `defaults.checks`)")
                } else {
                    (format!("{pointer}/checks/at/{j}"), "")
                };
                self.push(
                    Diagnostic::error(
                        Code::OffsetBeyondBake,
                        at_pointer,
                        format!(
                            "check at {at}{note} is beyond stage `{}`'s bake of {}",
                            stage.name, stage.bake
                        ),
                    )
                    .with_help("checks run during the bake: use an offset no longer than `bake`"),
                );
            }
        }
        let count = check_count(bake, checks);
        if count > MAX_CHECKS {
            let every_pointer = match (inherited, checks.every.is_some()) {
                (true, true) => "/defaults/checks/every".to_owned(),
                (true, false) => "/defaults/checks/at".to_owned(),
                (false, true) => format!("{pointer}/checks/every"),
                (false, false) => format!("{pointer}/checks/at"),
            };
            // The shortest interval that keeps the bake under the limit, in whole seconds.
            let shortest = Duration::from_secs(bake.as_secs().div_ceil(MAX_CHECKS as u64).max(1));
            self.push(
                Diagnostic::error(
                    Code::TooManyChecks,
                    every_pointer,
                    format!(
                        "stage `{}` would run {} checks in its bake of {}; the limit is {} checks a stage, because every check is a sample in the journal and an entry in memory",
                        stage.name,
                        grouped(count),
                        format_duration(bake),
                        grouped(MAX_CHECKS)
                    ),
                )
                .with_help(format!(
                    "use a longer `every` (at least {} for this bake)",
                    format_duration(shortest)
                )),
            );
        }
        if let Some(every) = checks.every
            && every.as_duration().is_zero()
        {
            let every_pointer = if inherited {
                "/defaults/checks/every".to_owned()
            } else {
                format!("{pointer}/checks/every")
            };
            self.push(Diagnostic::error(
                Code::Range,
                every_pointer,
                "`every: 0s` would check without pause; use a positive interval",
            ));
        }
    }

    /// Gates a stage uses must read probes that the stage's checks run, and their streaks should
    /// fit in the checks the stage has.
    fn stage_gates(&mut self, pointer: &str, stage: &Stage) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        let checks = stage.effective_checks(defaults);
        let run: HashSet<&str> = checks
            .map(|c| c.probes.iter().map(String::as_str).collect())
            .unwrap_or_default();
        // A misspelt probe in the checks is already reported; what it was meant to run is unknown.
        let checks_resolve = run.iter().all(|p| plan.probes.contains_key(*p));
        let count = checks.map_or(0, |c| check_count(stage.bake.as_duration(), c));
        let gates_pointer = if stage.gates.is_some() {
            format!("{pointer}/gates")
        } else {
            "/defaults/gates".to_owned()
        };
        for (j, gate_name) in stage.effective_gates(defaults).iter().enumerate() {
            let Some(gate) = plan.gates.get(gate_name) else {
                continue;
            };
            let mut missing: Vec<String> = self
                .parsed
                .get(gate_name.as_str())
                .into_iter()
                .flatten()
                .flat_map(Expr::metrics)
                .map(super::expr::MetricRef::probe)
                .filter(|p| !run.contains(p) && plan.probes.contains_key(*p))
                .map(str::to_owned)
                .collect();
            missing.sort_unstable();
            missing.dedup();
            for probe in missing.into_iter().filter(|_| checks_resolve) {
                self.push(
                    Diagnostic::error(
                        Code::ProbeNotRun,
                        format!("{gates_pointer}/{j}"),
                        format!(
                            "gate `{gate_name}` reads probe `{probe}`, but stage `{}`'s checks do not run it",
                            stage.name
                        ),
                    )
                    .depending_on(join("/gates", gate_name))
                    .depending_on(join("/probes", &probe))
                    .depending_on(format!("{}/probes", checks_pointer(pointer, stage)))
                    .with_help(format!("add `{probe}` to the stage's `checks.probes`")),
                );
            }
            if gate.at != GateAt::EveryCheck {
                continue;
            }
            for (k, condition) in gate.require.iter().enumerate() {
                let Condition::Detailed(spec) = condition else {
                    continue;
                };
                let needed = spec
                    .consecutive
                    .or(spec.within.map(|w| w.violations))
                    .unwrap_or(1) as usize;
                if needed > count && stage.approval.is_none() {
                    self.push(
                        Diagnostic::warning(
                            Code::UnreachableStreak,
                            format!("/gates/{gate_name}/require/{k}"),
                            format!(
                                "this condition needs {needed} violations, but stage `{}` runs only {count} check{} in its bake of {}",
                                stage.name,
                                if count == 1 { "" } else { "s" },
                                format_duration(stage.bake.as_duration())
                            ),
                        )
                        .depending_on(format!("/gates/{gate_name}/at"))
                        .depending_on(format!("{pointer}/bake"))
                        .depending_on(format!("{pointer}/approval"))
                        .depending_on(checks_pointer(pointer, stage))
                        .with_help("check more often in that stage, or lower the streak"),
                    );
                }
            }
        }
    }

    fn unused(&mut self) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        let mut used_probes: HashSet<&str> = plan
            .preflight
            .iter()
            .filter_map(|p| p.probe.as_deref())
            .collect();
        let mut used_gates = HashSet::new();
        for stage in &plan.stages {
            if let Some(checks) = stage.effective_checks(defaults) {
                used_probes.extend(checks.probes.iter().map(String::as_str));
            }
            used_gates.extend(stage.effective_gates(defaults).iter().map(String::as_str));
        }
        for name in plan.probes.keys() {
            if !used_probes.contains(name.as_str()) {
                self.push(
                    Diagnostic::warning(
                        Code::Unused,
                        join("/probes", name),
                        format!("probe `{name}` is never run by a check or preflight"),
                    )
                    .at_key()
                    .depending_on("/stages")
                    .depending_on("/defaults")
                    .depending_on("/preflight"),
                );
            }
        }
        for name in plan.gates.keys() {
            if !used_gates.contains(name.as_str()) {
                self.push(
                    Diagnostic::warning(
                        Code::Unused,
                        join("/gates", name),
                        format!("gate `{name}` is not used by any stage"),
                    )
                    .at_key()
                    .depending_on("/stages")
                    .depending_on("/defaults")
                    .with_help("list it in a stage's `gates` or in `defaults.gates`"),
                );
            }
        }
    }

    /// Every step with its pointer: defaults, stages, rollback.
    fn all_steps(&self) -> Vec<(String, &'a Step)> {
        let plan = self.plan;
        let mut steps = Vec::new();
        if let Some(list) = plan.defaults.as_ref().and_then(|d| d.steps.as_ref()) {
            steps.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| (format!("/defaults/steps/{i}"), s)),
            );
        }
        for (i, stage) in plan.stages.iter().enumerate() {
            if let Some(list) = &stage.steps {
                steps.extend(
                    list.iter()
                        .enumerate()
                        .map(|(j, s)| (format!("/stages/{i}/steps/{j}"), s)),
                );
            }
        }
        steps.extend(
            plan.rollback
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("/rollback/{i}"), s)),
        );
        steps
    }

    /// Every argv with its pointer.
    fn all_argvs(&self) -> Vec<(String, &'a Argv)> {
        let plan = self.plan;
        let mut argvs: Vec<(String, &Argv)> = self
            .all_steps()
            .into_iter()
            .filter_map(|(pointer, step)| {
                step.run.as_ref().map(|run| (format!("{pointer}/run"), run))
            })
            .collect();
        for (i, item) in plan.preflight.iter().enumerate() {
            if let Some(run) = &item.run {
                argvs.push((format!("/preflight/{i}/run"), run));
            }
        }
        for (name, probe) in &plan.probes {
            if let Some(ProbeKind::Command(argv)) = Probe::kind(probe) {
                argvs.push((format!("{}/command", join("/probes", name)), argv));
            }
        }
        argvs
    }

    /// A secret interpolated into a command line is visible to every local user (`ps`, and
    /// `/proc/PID/cmdline`) for as long as the program runs; an environment variable is not.
    fn secrets_in_argv(&mut self) {
        for (pointer, argv) in self.all_argvs() {
            let probe = pointer.ends_with("/command");
            for (k, item) in argv.iter().enumerate() {
                let Ok(placeholders) = interpolate::placeholders(&item.0) else {
                    continue; // Reported by `interpolations`.
                };
                for placeholder in placeholders {
                    let Reference::Env(name) = &placeholder.reference else {
                        continue;
                    };
                    let program = argv.first().map_or("./deploy.sh", |p| p.0.as_str());
                    let owner = if pointer.starts_with("/preflight") {
                        "this preflight check's"
                    } else {
                        "this step's"
                    };
                    let help = if probe {
                        format!(
                            "command probes have no `env:` map; the program inherits the runner's environment, so let it read `{name}` from there instead of its argv"
                        )
                    } else {
                        format!(
                            "pass it through {owner} `env:` map and let the program read it from its environment:\n  run: [{program}, …]   # reads ${name}\n  env: {{ {name}: \"${{{{ env.{name} }}}}\" }}"
                        )
                    };
                    self.push(
                        Diagnostic::warning(
                            Code::SecretInArgv,
                            format!("{pointer}/{k}"),
                            format!(
                                "`${{{{ env.{name} }}}}` is a secret on a command line, where every local user can read it (`ps`)"
                            ),
                        )
                        .with_target(Target::Within {
                            start: placeholder.start,
                            len: placeholder.len,
                        })
                        .with_help(help),
                    );
                }
            }
        }
    }

    /// Relative script paths must exist beside the plan (the seed's missing-script incident);
    /// programs should be on PATH.
    fn argvs(&mut self, base: &Path) {
        for (pointer, argv) in self.all_argvs() {
            for (k, item) in argv.iter().enumerate() {
                let arg = item.0.as_str();
                if arg.contains("${{") {
                    continue;
                }
                let relative = arg.starts_with("./") || arg.starts_with("../");
                if relative && !base.join(arg).exists() {
                    self.push(
                        Diagnostic::error(
                            Code::MissingScript,
                            format!("{pointer}/{k}"),
                            format!("`{arg}` does not exist (looked in `{}`)", base.display()),
                        )
                        .with_help("relative paths are relative to the plan's folder; commit the script next to the plan"),
                    );
                } else if k == 0 && !relative && !program_exists(arg) {
                    self.push(
                        Diagnostic::warning(
                            Code::CommandNotFound,
                            format!("{pointer}/0"),
                            format!(
                                "program `{arg}` is not on this machine's PATH (reported once)"
                            ),
                        )
                        .with_help("fine if the machine that runs the plan has it"),
                    );
                }
            }
        }
    }
}

/// Where a stage's checks come from: its own `checks`, or `defaults.checks`.
fn checks_pointer(stage_pointer: &str, stage: &Stage) -> String {
    if stage.checks.is_some() {
        format!("{stage_pointer}/checks")
    } else {
        "/defaults/checks".to_owned()
    }
}

/// A value quoted in a message, cut short when it is long: the snippet shows where it stands.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text.into();
    }
    format!("{}…", &text[..text.floor_char_boundary(MAX)]).into()
}

/// Why `schedule.window` is refused, in a diagnostic.
fn window_error(window: &str, error: &WindowError) -> Diagnostic {
    const POINTER: &str = "/schedule/window";
    const EXAMPLE: &str =
        "e.g. `* 13-17 * * Mon-Thu`: any minute from 13:00 to 17:59, Monday to Thursday";
    let parts: Vec<&str> = window.split_whitespace().collect();
    let window = &*clip(window);
    match error {
        WindowError::Fields(fields) => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` has {fields} fields; a crontab window has 5 (minute hour day-of-month month day-of-week)"),
        )
        .with_help(EXAMPLE),
        WindowError::Extension { text, field } => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` is not standard crontab: {text} in the {field} field is a croner extension"),
        )
        .with_help("a window is a standard 5-field crontab: numbers, names (`Mon`, `Jan`), `*`, ranges `1-5`, lists `1,3` and steps `*/2`"),
        WindowError::Invalid(message) => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` is not a valid crontab window: {message}"),
        ),
        WindowError::NeverOpens => {
            Diagnostic::error(
                Code::BadWindow,
                POINTER,
                format!(
                    "the window `{window}` never opens: no date in 8 years has day of month `{}` in month `{}`",
                    clip(parts[2]),
                    clip(parts[3])
                ),
            )
            .with_help("a stage would wait for it forever; `0 0 29 2 *` (29 February) is fine, it opens in leap years")
        }
    }
}

fn conflict(pointer: &str, key: &str, other: &str, message: &str) -> Diagnostic {
    Diagnostic::error(
        Code::Conflict,
        format!("{pointer}/{key}"),
        message.to_owned(),
    )
    .at_key()
    .with_help(format!("remove `{key}` or `{other}`"))
}

/// The most checks one stage may run: a day checked every second is 86,400.
pub const MAX_CHECKS: usize = 100_000;

/// A count with thousands separators: `2,592,000,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// How many checks a stage runs in its bake: `at` offsets, `every` ticks, and the final check
/// at the bake's end when none is scheduled there.
pub fn check_count(bake: Duration, checks: &crate::plan::model::Checks) -> usize {
    let every = checks
        .every
        .map(PlanDuration::as_duration)
        .filter(|e| !e.is_zero());
    let on_grid = |offset: Duration| {
        every.is_some_and(|e| !offset.is_zero() && offset.as_millis().is_multiple_of(e.as_millis()))
    };
    let ticks = every.map_or(0, |e| bake.as_millis() / e.as_millis());
    let mut extra: Vec<Duration> = checks
        .at
        .iter()
        .map(|d| d.as_duration())
        .filter(|d| *d <= bake && !on_grid(*d))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    let final_scheduled = on_grid(bake) || extra.last() == Some(&bake);
    usize::try_from(ticks).unwrap_or(usize::MAX) + extra.len() + usize::from(!final_scheduled)
}

/// Whether a program is on PATH; answers are cached for the process, since one `validate` of
/// many plans asks about the same few programs.
fn program_exists(program: &str) -> bool {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, bool>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(program).copied()) {
        return known;
    }
    let path = Path::new(program);
    let exists = if path.is_absolute() {
        path.exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if let Ok(mut cache) = cache.lock() {
        cache.insert(program.to_owned(), exists);
    }
    exists
}

/// Checks every `${{ … }}` in the document: it parses, its var exists, and it stands where its
/// value is known.
fn interpolations(plan: &Plan, document: &Value, out: &mut Vec<Diagnostic>) {
    let vars: Vec<String> = plan.vars.keys().cloned().collect();
    let mut stack = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                stack.extend(map.iter().map(|(k, v)| (join(&pointer, k), v)));
            }
            Value::Array(items) => {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{pointer}/{i}"), v)),
                );
            }
            Value::String(text) if text.contains("${{") => {
                string_interpolations(&pointer, text, plan, &vars, out);
            }
            _ => {}
        }
    }
}

fn string_interpolations(
    pointer: &str,
    text: &str,
    plan: &Plan,
    vars: &[String],
    out: &mut Vec<Diagnostic>,
) {
    let placeholders = match interpolate::placeholders(text) {
        Ok(placeholders) => placeholders,
        Err(error) => {
            out.push(
                Diagnostic::error(Code::BadInterpolation, pointer, error.message).with_target(
                    Target::Within {
                        start: error.start,
                        len: error.len,
                    },
                ),
            );
            return;
        }
    };
    let section = pointer.split('/').nth(1).unwrap_or_default();
    for placeholder in placeholders {
        let within = Target::Within {
            start: placeholder.start,
            len: placeholder.len,
        };
        let reference = &placeholder.reference;
        let misplaced = match (section, reference) {
            ("vars", _) => Some("`vars` are plain values; they cannot refer to anything"),
            ("name" | "description" | "version" | "schedule", _) => {
                Some("interpolation is not available here")
            }
            ("preflight", Reference::StageName | Reference::StageTraffic) => {
                Some("preflight runs before any stage, so `stage` has no value there")
            }
            _ => None,
        };
        if let Some(why) = misplaced {
            out.push(
                Diagnostic::error(
                    Code::BadInterpolation,
                    pointer,
                    format!("`${{{{ {reference} }}}}` cannot be used here: {why}"),
                )
                .with_target(within),
            );
            continue;
        }
        if let Reference::Var(name) = reference
            && !plan.vars.contains_key(name)
        {
            let mut d = Diagnostic::error(
                Code::UnknownVar,
                pointer,
                format!("`vars.{name}` is not defined in `vars`"),
            )
            .with_target(within)
            .depending_on(join("/vars", name));
            d = d.with_help(match did_you_mean(name, vars) {
                Some(best) => format!("did you mean `vars.{best}`?"),
                None => format!("add `{name}: …` under `vars`"),
            });
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::Checks;
    use crate::plan::units::parse_duration;

    fn checks(every: Option<&str>, at: &[&str]) -> Checks {
        Checks {
            every: every.map(|e| PlanDuration(parse_duration(e).unwrap())),
            at: at
                .iter()
                .map(|a| PlanDuration(parse_duration(a).unwrap()))
                .collect(),
            probes: vec!["p".into()],
        }
    }

    #[test]
    fn a_30_day_bake_checked_every_millisecond_is_counted_not_listed() {
        let bake = Duration::from_hours(30 * 24);
        assert_eq!(check_count(bake, &checks(Some("1ms"), &[])), 2_592_000_000);
        assert_eq!(grouped(2_592_000_000), "2,592,000,000");
        assert_eq!(grouped(100_000), "100,000");
        assert_eq!(grouped(7), "7");
    }

    #[test]
    fn check_count_includes_the_final_check_once() {
        let bake = Duration::from_hours(1);
        assert_eq!(
            check_count(bake, &checks(None, &["5m", "15m", "45m", "60m"])),
            4
        );
        assert_eq!(check_count(bake, &checks(None, &["5m", "15m"])), 3);
        assert_eq!(check_count(bake, &checks(Some("5m"), &[])), 12);
        assert_eq!(check_count(bake, &checks(Some("7m"), &[])), 9);
        assert_eq!(check_count(bake, &checks(Some("5m"), &["10m", "12m"])), 13);
        assert_eq!(check_count(bake, &checks(None, &[])), 1);
    }
}
