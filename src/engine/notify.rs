//! Notifications: a JSON or Slack-format POST on the events a `notify` entry lists. A failed
//! notification is retried and logged, and never fails or blocks the run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use crate::engine::Sink;
use crate::engine::context::Resolver;
use crate::event::Record;
use crate::plan::model::{Notify, NotifyFormat};
use crate::report::escape::{slack, terminal};

/// Attempts per notification, and the timeout of each.
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a run waits for notifications still in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Sends notifications in the background.
pub struct Notifier {
    targets: Vec<Notify>,
    resolver: Arc<Resolver>,
    plan: String,
    run_id: String,
    client: reqwest::Client,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

/// Lets the caller wait for notifications in flight once the run ends.
#[derive(Clone)]
pub struct Pending(Arc<Mutex<JoinSet<()>>>);

impl Pending {
    /// Waits for notifications in flight, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let mut tasks = std::mem::take(&mut *self.0.lock().expect("notify lock"));
        let _ =
            tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    }
}

impl Notifier {
    pub fn new(
        targets: Vec<Notify>,
        resolver: Arc<Resolver>,
        plan: &str,
        run_id: &str,
        client: reqwest::Client,
    ) -> (Notifier, Pending) {
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        (
            Notifier {
                targets,
                resolver,
                plan: plan.to_owned(),
                run_id: run_id.to_owned(),
                client,
                tasks: Arc::clone(&tasks),
            },
            Pending(tasks),
        )
    }
}

/// The text of an event for people (Slack); text from the plan and from outside is escaped, so
/// `<!channel>` or `<url|text>` in a probe error is shown, not acted on.
fn summary(plan: &str, name: &str, record: &Record) -> String {
    let detail = serde_json::to_value(&record.event)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
        .map(|v| match v {
            serde_json::Value::Object(fields) => fields
                .iter()
                .filter(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "stage" | "traffic" | "reason" | "gate" | "outcome" | "by"
                    )
                })
                .map(|(k, v)| {
                    format!(
                        "{k}: {}",
                        slack(&terminal(
                            &v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                        ))
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        })
        .unwrap_or_default();
    format!(
        "*{}* {}{}",
        slack(plan),
        name.replace('_', " "),
        if detail.is_empty() {
            String::new()
        } else {
            format!(" — {detail}")
        }
    )
}

impl Sink for Notifier {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let Some(name) = record.event.notify_name() else {
            return Ok(());
        };
        for target in &self.targets {
            if !target.on.is_empty()
                && !target.on.iter().any(|e| {
                    serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .as_deref()
                        == Some(name)
                })
            {
                continue;
            }
            let Ok(url) = self.resolver.fill(&target.url, None) else {
                continue;
            };
            let body = match target.format.unwrap_or(NotifyFormat::Json) {
                NotifyFormat::Slack => json!({ "text": summary(&self.plan, name, record) }),
                NotifyFormat::Json => json!({
                    "plan": self.plan,
                    "run_id": self.run_id,
                    "event": name,
                    "record": record,
                }),
            };
            let headers: Vec<(String, String)> = target
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.clone(), self.resolver.fill(&v.value, None).ok()?.value))
                })
                .collect();
            let client = self.client.clone();
            let event = name.to_owned();
            let task = async move {
                let mut last = String::new();
                for attempt in 0..ATTEMPTS {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    }
                    let mut request = client.post(&url.value).timeout(TIMEOUT).json(&body);
                    for (k, v) in &headers {
                        request = request.header(k, v);
                    }
                    match request.send().await {
                        Ok(response) if response.status().is_success() => return,
                        Ok(response) => last = format!("answered {}", response.status()),
                        Err(e) => last = crate::probe::http::describe(&e, &url.redacted),
                    }
                }
                eprintln!(
                    "warning: notification `{event}` to {} failed after {ATTEMPTS} attempts: {}",
                    terminal(&url.redacted),
                    terminal(&last)
                );
            };
            if let Ok(mut tasks) = self.tasks.lock() {
                tasks.spawn(task);
            }
        }
        Ok(())
    }
}
