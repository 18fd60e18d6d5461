//! What changed between two versions of a plan, in words: why a run refuses to resume.

use crate::plan::model::Plan;

/// One line per change to stages, gates, probes, steps, rollback and schedule.
pub fn summarize(old: &Plan, new: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let json = |v: &dyn erased::Json| v.to_json();
    let old_stages: Vec<&str> = old.stages.iter().map(|s| s.name.as_str()).collect();
    let new_stages: Vec<&str> = new.stages.iter().map(|s| s.name.as_str()).collect();
    for name in &old_stages {
        if !new_stages.contains(name) {
            out.push(format!("stage `{name}` was removed"));
        }
    }
    for stage in &new.stages {
        match old.stages.iter().find(|s| s.name == stage.name) {
            None => out.push(format!("stage `{}` was added", stage.name)),
            Some(before) => {
                if (before.traffic - stage.traffic).abs() > f64::EPSILON {
                    out.push(format!(
                        "stage `{}`: traffic {}% → {}%",
                        stage.name, before.traffic, stage.traffic
                    ));
                }
                if before.bake != stage.bake {
                    out.push(format!(
                        "stage `{}`: bake {} → {}",
                        stage.name, before.bake, stage.bake
                    ));
                }
                if json(&before.steps) != json(&stage.steps)
                    || json(&before.checks) != json(&stage.checks)
                    || json(&before.gates) != json(&stage.gates)
                    || json(&before.approval) != json(&stage.approval)
                {
                    out.push(format!(
                        "stage `{}`: steps, checks, gates or approval changed",
                        stage.name
                    ));
                }
            }
        }
    }
    if old_stages != new_stages && old_stages.len() == new_stages.len() {
        out.push("the stages were reordered".to_owned());
    }
    for (kind, before, after) in [
        ("gate", json(&old.gates), json(&new.gates)),
        ("probe", json(&old.probes), json(&new.probes)),
    ] {
        let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
            continue;
        };
        for (name, value) in after {
            match before.get(name) {
                None => out.push(format!("{kind} `{name}` was added")),
                Some(old_value) if old_value != value => {
                    out.push(format!("{kind} `{name}` changed"));
                }
                Some(_) => {}
            }
        }
        for name in before.keys().filter(|n| !after.contains_key(*n)) {
            out.push(format!("{kind} `{name}` was removed"));
        }
    }
    for (what, before, after) in [
        ("defaults", json(&old.defaults), json(&new.defaults)),
        ("rollback steps", json(&old.rollback), json(&new.rollback)),
        ("preflight", json(&old.preflight), json(&new.preflight)),
        ("schedule", json(&old.schedule), json(&new.schedule)),
        ("vars", json(&old.vars), json(&new.vars)),
        ("notify", json(&old.notify), json(&new.notify)),
    ] {
        if before != after {
            out.push(format!("{what} changed"));
        }
    }
    if out.is_empty() {
        out.push("only comments, formatting or descriptions changed".to_owned());
    }
    out
}

/// Comparing parts of plans through their JSON form.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}
