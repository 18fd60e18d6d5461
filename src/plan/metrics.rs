//! Which metrics each probe produces, and in which unit: what gate conditions are checked
//! against.

use crate::plan::model::{ProbeKind, ProbeSpec};
use crate::plan::units::LiteralUnit;

/// The unit a metric is measured in (Prometheus base units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    Seconds,
    /// A fraction: 0.005 is 0.5%.
    Ratio,
    Count,
    PerSecond,
    /// HTTP status code.
    Status,
    /// From a query, a JSON body or a program: the plan author knows.
    Unknown,
}

impl MetricUnit {
    /// Whether a threshold written with `unit` may be compared with this metric.
    pub fn accepts(self, unit: LiteralUnit) -> bool {
        match unit {
            LiteralUnit::Plain => true,
            LiteralUnit::Duration => matches!(self, MetricUnit::Seconds | MetricUnit::Unknown),
            LiteralUnit::Percent => matches!(self, MetricUnit::Ratio | MetricUnit::Unknown),
        }
    }

    /// Whether two metrics can be compared with each other.
    pub fn comparable(self, other: MetricUnit) -> bool {
        self == other || self == MetricUnit::Unknown || other == MetricUnit::Unknown
    }

    /// The unit a value of this metric is shown in: seconds as ms/s, fractions as percent.
    pub fn shown_as(self) -> LiteralUnit {
        match self {
            MetricUnit::Seconds => LiteralUnit::Duration,
            MetricUnit::Ratio => LiteralUnit::Percent,
            _ => LiteralUnit::Plain,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            MetricUnit::Seconds => "seconds",
            MetricUnit::Ratio => "a fraction",
            MetricUnit::Count => "a count",
            MetricUnit::PerSecond => "a rate per second",
            MetricUnit::Status => "an HTTP status",
            MetricUnit::Unknown => "a number",
        }
    }
}

/// The per-target metrics of a load probe: `PROBE.TARGET.NAME`.
pub const LOAD_METRICS: &[(&str, MetricUnit)] = &[
    ("requests", MetricUnit::Count),
    ("errors", MetricUnit::Count),
    ("error_rate", MetricUnit::Ratio),
    ("success_rate", MetricUnit::Ratio),
    ("rps", MetricUnit::PerSecond),
    ("min", MetricUnit::Seconds),
    ("avg", MetricUnit::Seconds),
    ("max", MetricUnit::Seconds),
    ("p50", MetricUnit::Seconds),
    ("p90", MetricUnit::Seconds),
    ("p95", MetricUnit::Seconds),
    ("p99", MetricUnit::Seconds),
];

/// The per-target distributions of a load probe: `PROBE.TARGET.latency`, the check's raw
/// latencies (its HDR histogram). Only `compare:` reads them (`docs/plan.md`, "Compare"); a
/// condition reads a percentile instead.
pub const LOAD_DISTRIBUTIONS: &[(&str, MetricUnit)] = &[("latency", MetricUnit::Seconds)];

/// Whether `within` (`canary.latency`, the name inside the probe) is one of a load probe's
/// distributions rather than a number.
pub fn is_distribution(probe: &ProbeSpec, within: &str) -> bool {
    let Some(ProbeKind::Load(load)) = probe.kind() else {
        return false;
    };
    within.rsplit_once('.').is_some_and(|(target, metric)| {
        load.targets.contains_key(target) && LOAD_DISTRIBUTIONS.iter().any(|(m, _)| *m == metric)
    })
}

/// What a probe can produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catalog {
    /// These names (within the probe), and their units.
    Fixed(Vec<(String, MetricUnit)>),
    /// Any name: a command prints the keys it likes.
    Any,
}

impl Catalog {
    pub fn of(probe: &ProbeSpec) -> Catalog {
        match probe.kind() {
            Some(ProbeKind::Command(_)) | None => Catalog::Any,
            Some(ProbeKind::Http(http)) => Catalog::Fixed(
                http.metrics
                    .keys()
                    .map(|name| (name.clone(), MetricUnit::Unknown))
                    .chain([
                        ("status".to_owned(), MetricUnit::Status),
                        ("latency".to_owned(), MetricUnit::Seconds),
                    ])
                    .collect(),
            ),
            Some(ProbeKind::Prometheus(prometheus)) => Catalog::Fixed(
                prometheus
                    .queries
                    .keys()
                    .map(|name| (name.clone(), MetricUnit::Unknown))
                    .collect(),
            ),
            Some(ProbeKind::Load(load)) => Catalog::Fixed(
                load.targets
                    .keys()
                    .flat_map(|target| {
                        LOAD_METRICS
                            .iter()
                            .chain(LOAD_DISTRIBUTIONS)
                            .map(move |(metric, unit)| (format!("{target}.{metric}"), *unit))
                    })
                    .collect(),
            ),
        }
    }

    /// The unit of `name` (within the probe), or `None` when the probe cannot produce it. A
    /// distribution's unit is that of its values.
    pub fn unit(&self, name: &str) -> Option<MetricUnit> {
        match self {
            Catalog::Any => (!name.is_empty()).then_some(MetricUnit::Unknown),
            Catalog::Fixed(metrics) => metrics.iter().find(|(m, _)| m == name).map(|(_, u)| *u),
        }
    }

    /// Every name it can produce (none listed for `Any`).
    pub fn names(&self) -> Vec<String> {
        match self {
            Catalog::Any => Vec::new(),
            Catalog::Fixed(metrics) => metrics.iter().map(|(m, _)| m.clone()).collect(),
        }
    }
}
