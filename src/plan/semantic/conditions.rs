//! A gate or preflight condition: it parses, its metrics exist, and its units agree.

use crate::plan::diagnostic::{Code, Diagnostic, Target, did_you_mean};
use crate::plan::expr::{self, Expr, MetricRef, Rhs};
use crate::plan::metrics::{MetricUnit, is_distribution};
use crate::plan::model::Condition;
use crate::plan::span::join;

use super::Checker;

impl Checker<'_> {
    /// Parses a condition and checks its metrics; `only_probe` limits them to one probe
    /// (preflight).
    pub(super) fn condition(
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
            if self
                .plan
                .probes
                .get(probe)
                .is_some_and(|p| is_distribution(p, metric.within_probe()))
            {
                let target = metric.name.rsplit_once('.').map_or("", |(t, _)| t);
                let mut d = Diagnostic::error(
                    Code::DistributionInCondition,
                    text_pointer,
                    format!(
                        "`{}` is a distribution of latencies; compare it (`compare:`) or use a percentile such as `{target}.p95`",
                        metric.name
                    ),
                )
                .with_target(within)
                .with_help(format!(
                    "write `{target}.p95 <= 300ms`, or move it to `compare:` against the baseline's latencies"
                ));
                d.add_depends(self.catalog_nodes(probe));
                self.push(d);
                ok = false;
            } else if let Some(unit) = self.metric_unit(text_pointer, metric, within) {
                units.push(unit);
            } else {
                ok = false;
            }
        }
        ok.then_some(units)
    }

    /// The unit of one metric, or `None` (reported at `pointer`, on `target`) when its probe
    /// does not exist or cannot produce it. Shared by conditions and `compare:` entries.
    pub(super) fn metric_unit(
        &mut self,
        pointer: &str,
        metric: &MetricRef,
        target: Target,
    ) -> Option<MetricUnit> {
        let probe = metric.probe();
        let Some(catalog) = self.catalogs.get(probe) else {
            let mut d = Diagnostic::error(
                Code::UnknownProbe,
                pointer,
                format!(
                    "`{}` reads probe `{probe}`, which is not defined in `probes`",
                    metric.name
                ),
            )
            .with_target(target)
            .depending_on(join("/probes", probe));
            d.help = Some(self.probe_help(probe));
            self.push(d);
            return None;
        };
        let name = metric.within_probe();
        if let Some(unit) = catalog.unit(name) {
            return Some(unit);
        }
        let names = catalog.names();
        let help = did_you_mean(name, &names, &format!("{probe}.")).unwrap_or_else(|| {
            format!(
                "probe `{probe}` produces: {}",
                names
                    .iter()
                    .map(|n| format!("{probe}.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let mut d = Diagnostic::error(
            Code::UnknownMetric,
            pointer,
            format!("probe `{probe}` cannot produce `{}`", metric.name),
        )
        .with_target(target)
        .with_help(help);
        d.add_depends(self.catalog_nodes(probe));
        self.push(d);
        None
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
}
