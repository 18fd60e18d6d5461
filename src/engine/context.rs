//! Filling `${{ … }}` for a run: `vars`, `env` (secrets, shown as `***`), the current stage and
//! the run id.

use std::collections::HashMap;

use crate::plan::interpolate::{self, Filled, Reference};
use crate::plan::model::Plan;
use crate::redact::{Redactor, secret_headers};

/// The stage a string is filled for.
#[derive(Debug, Clone, Copy)]
pub struct StageRef<'a> {
    pub name: &'a str,
    pub traffic: f64,
}

/// Everything `${{ … }}` can refer to in one run.
#[derive(Debug, Clone)]
pub struct Resolver {
    vars: HashMap<String, String>,
    env: HashMap<String, String>,
    run_id: String,
}

/// `env` names a plan uses that are not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable{} {} not set; the plan uses {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "), if .0.len() == 1 { "it" } else { "them" })]
pub struct MissingEnv(pub Vec<String>);

impl Resolver {
    /// For a live run: every `env` name the plan uses must be set now, before anything runs.
    pub fn from_environment(plan: &Plan, run_id: &str) -> Result<Resolver, MissingEnv> {
        let mut env = HashMap::new();
        let mut missing = Vec::new();
        for name in env_names(plan) {
            match std::env::var(&name) {
                Ok(value) => {
                    env.insert(name, value);
                }
                Err(_) => missing.push(name),
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(MissingEnv(missing));
        }
        Ok(Resolver::new(plan, env, run_id))
    }

    /// For dry runs and scenarios: secrets are never read; they stand as `***`.
    pub fn without_secrets(plan: &Plan, run_id: &str) -> Resolver {
        let env = env_names(plan)
            .into_iter()
            .map(|n| (n, "***".to_owned()))
            .collect();
        Resolver::new(plan, env, run_id)
    }

    fn new(plan: &Plan, env: HashMap<String, String>, run_id: &str) -> Resolver {
        Resolver {
            vars: plan
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            env,
            run_id: run_id.to_owned(),
        }
    }

    /// Fills a string; `stage` is `None` outside stages (preflight).
    pub fn fill(&self, text: &str, stage: Option<StageRef<'_>>) -> Result<Filled, String> {
        interpolate::fill(text, |reference| match reference {
            Reference::Var(name) => self.vars.get(name).cloned(),
            Reference::Env(name) => self.env.get(name).cloned(),
            Reference::StageName => stage.map(|s| s.name.to_owned()),
            Reference::StageTraffic => stage.map(|s| format_traffic(s.traffic)),
            Reference::RunId => Some(self.run_id.clone()),
        })
        .map_err(|e| format!("in `{text}`: {}", e.message))
    }

    /// Every `env` value: secrets, which [`Redactor`](crate::redact::Redactor) takes
    /// out of everything that leaves the runner.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.env.values().map(String::as_str)
    }
}

/// `5` for 5.0, `2.5` for 2.5: traffic as a command line wants it.
pub fn format_traffic(traffic: f64) -> String {
    if traffic.fract() == 0.0 {
        format!("{traffic:.0}")
    } else {
        traffic.to_string()
    }
}

/// Every `env.NAME` the plan refers to, anywhere.
pub fn env_names(plan: &Plan) -> Vec<String> {
    let value = serde_json::to_value(plan).unwrap_or_default();
    let mut names = Vec::new();
    let mut stack = vec![&value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) if text.contains("${{") => {
                for placeholder in interpolate::placeholders(text).unwrap_or_default() {
                    if let Reference::Env(name) = placeholder.reference
                        && !names.contains(&name)
                    {
                        names.push(name);
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    names.sort();
    names
}

impl Redactor {
    /// The secrets of a live run: every `env` value the plan uses, and the value of every secret
    /// header (by name, see [`crate::redact::is_secret_header`], or listed in `secret_headers`) anywhere in the
    /// plan, as filled for preflight and for every stage.
    pub fn for_run(plan: &Plan, resolver: &Resolver) -> Redactor {
        let mut values: Vec<String> = resolver.secrets().map(str::to_owned).collect();
        let mut headers = Vec::new();
        let tree = serde_json::to_value(plan).unwrap_or_default();
        secret_headers(&tree, &mut headers);
        let stages: Vec<Option<StageRef<'_>>> = std::iter::once(None)
            .chain(plan.stages.iter().map(|s| {
                Some(StageRef {
                    name: &s.name,
                    traffic: s.traffic,
                })
            }))
            .collect();
        for value in headers {
            for stage in &stages {
                if let Ok(filled) = resolver.fill(value, *stage) {
                    values.push(filled.value);
                }
            }
        }
        Redactor::new(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_prints_as_a_command_line_wants() {
        assert_eq!(format_traffic(5.0), "5");
        assert_eq!(format_traffic(2.5), "2.5");
        assert_eq!(format_traffic(100.0), "100");
    }
}
