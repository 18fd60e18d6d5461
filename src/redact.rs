//! Secrets never leave (`docs/plan.md`, "Secrets"): every `env` value a plan uses and every
//! value of a secret header is replaced by `***` in every string the runner prints, stores or
//! sends — before any truncation, so that no tail of a secret survives a cut.
//!
//! Probes and steps redact outside text (bodies, stderr, output) before they cut it; the
//! [`Redacting`] sink redacts every string of every event once more before the journal, the
//! progress report and notifications see it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::event::{Record, Sink};

/// Shorter values are not treated as secrets: replacing `1` or `on` everywhere would garble
/// every line and protect nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// What stands for a secret.
pub const MASK: &str = "***";

/// A base64 form of a secret is looked for only when the characters that depend on the
/// secret's bytes alone are at least this many: a shorter run turns up by chance in longer
/// base64 text.
pub const MIN_BASE64_CORE: usize = 8;

/// Whether a header's value is a secret by its name: `Authorization`, `Cookie`, `*-Key`,
/// `*-Token`, case-insensitive (and `Proxy-Authorization`, `Set-Cookie` alike).
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.ends_with("authorization")
        || name.ends_with("cookie")
        || name.ends_with("-key")
        || name.ends_with("-token")
}

/// Replaces known secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first (so a secret containing another goes whole).
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values, in each form they may take in text: as given; for
    /// `Bearer X`-style values also `X`; JSON-escaped and percent-encoded when those differ;
    /// base64-encoded (see `base64_forms`). Values shorter than [`MIN_SECRET_LEN`] are
    /// ignored.
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Redactor {
        let mut secrets = Vec::new();
        let mut push = |form: String| {
            if form.len() >= MIN_SECRET_LEN && !secrets.contains(&form) {
                secrets.push(form);
            }
        };
        for value in values {
            let value = value.as_ref();
            let mut bases = vec![value.to_owned()];
            if let Some((scheme, credential)) = value.trim().split_once(char::is_whitespace)
                && !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                bases.push(credential.trim().to_owned());
            }
            for base in bases {
                if base.len() < MIN_SECRET_LEN {
                    continue;
                }
                let json = serde_json::to_string(&base).unwrap_or_default();
                let json = json
                    .strip_prefix('"')
                    .and_then(|j| j.strip_suffix('"'))
                    .unwrap_or(&base)
                    .to_owned();
                let form: String = url::form_urlencoded::byte_serialize(base.as_bytes()).collect();
                let percent = form.replace('+', "%20");
                for encoded in base64_forms(base.as_bytes()) {
                    push(encoded);
                }
                push(base);
                push(json);
                push(form);
                push(percent);
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// For headers given outside a plan (`ion-plan probe`): the secret ones by name.
    pub fn for_headers(headers: &[(String, String)]) -> Redactor {
        Redactor::new(
            headers
                .iter()
                .filter(|(name, _)| is_secret_header(name))
                .map(|(_, value)| value),
        )
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Redacts every string (and object key) of a JSON value in place; whether any changed.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => {
                let redacted = self.redact(text);
                let changed = redacted != *text;
                *text = redacted;
                changed
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.redact_json(item) | changed),
            serde_json::Value::Object(map) => {
                let mut changed = false;
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    changed |= self.redact_json(&mut item);
                    let redacted = self.redact(&key);
                    changed |= redacted != key;
                    map.insert(redacted, item);
                }
                changed
            }
            _ => false,
        }
    }

    /// A record with every string redacted; the record itself when nothing had to change.
    ///
    /// A secret that happens to equal a word of the format (an outcome, a mode, a field name)
    /// would break the record if redacted there: such whole-string matches are kept, since
    /// they are the format's word and carry nothing of the secret's use; every other
    /// occurrence is redacted. Nothing falls back to the unredacted record.
    pub fn redact_record(&self, record: &Record) -> Record {
        if self.secrets.is_empty() {
            return record.clone();
        }
        let Ok(original) = serde_json::to_value(record) else {
            return record.clone();
        };
        let mut value = original.clone();
        if !self.redact_json(&mut value) {
            return record.clone();
        }
        // Records round-trip through JSON: the journal is read back the same way.
        if let Ok(redacted) = serde_json::from_value(value) {
            return redacted;
        }
        let mut value = original;
        self.redact_values_keeping_words(&mut value);
        serde_json::from_value(value).unwrap_or_else(|_| Record {
            seq: record.seq,
            at: record.at,
            event: crate::event::Event::NotifyFailed {
                url: String::new(),
                event: "redacted".to_owned(),
                reason: "an event that held a secret could not be redacted and was dropped"
                    .to_owned(),
            },
        })
    }

    /// Redacts string values (not object keys), leaving a string that is exactly a secret as
    /// it is: the format's own words (`pass`, `live`) must survive.
    fn redact_values_keeping_words(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if !self.secrets.iter().any(|s| s == text) => {
                *text = self.redact(text);
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    self.redact_values_keeping_words(item);
                }
            }
            serde_json::Value::Object(map) => {
                for item in map.values_mut() {
                    self.redact_values_keeping_words(item);
                }
            }
            _ => {}
        }
    }
}

/// The base64 forms of a secret, standard and URL-safe alphabet, as it may appear inside a
/// larger encoded blob: for each of the three alignments (the secret starting at a byte offset
/// 0, 1 or 2 mod 3), the characters that depend on the secret's bytes alone — without the
/// leading ones shared with the bytes before it and the trailing one shared with the bytes
/// after it — and, for a secret that ends the blob, those characters with the last one, with
/// and without padding. None when those characters are fewer than [`MIN_BASE64_CORE`].
fn base64_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for k in 0..3 {
        // `k` zero bytes touch the first ⌈8k/6⌉ characters; every character after the last
        // whole one (`bits / 6`) depends on what follows.
        let bits = 8 * (k + secret.len());
        let (first, whole) = ((8 * k).div_ceil(6), bits / 6);
        if whole.saturating_sub(first) < MIN_BASE64_CORE {
            continue;
        }
        let mut input = vec![0u8; k];
        input.extend_from_slice(secret);
        for engine in [STANDARD, URL_SAFE] {
            let padded = engine.encode(&input);
            let unpadded = padded.trim_end_matches('=');
            forms.push(padded[first..whole].to_owned());
            forms.push(unpadded[first..].to_owned());
            forms.push(padded[first..].to_owned());
        }
    }
    forms
}

/// The values of secret headers anywhere in a plan's tree: a `headers` map's entries whose
/// name is a secret header's, or is listed in the `secret_headers` beside it.
pub(crate) fn secret_headers<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Array(items) => {
            for item in items {
                secret_headers(item, out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                if key == "headers"
                    && let Some(headers) = item.as_object()
                {
                    let marked: Vec<&str> = map
                        .get("secret_headers")
                        .and_then(serde_json::Value::as_array)
                        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
                        .unwrap_or_default();
                    // A value is a string, or `{value, secret: true}`.
                    let marked_here = |v: &serde_json::Value| {
                        v.get("secret").and_then(serde_json::Value::as_bool) == Some(true)
                    };
                    out.extend(
                        headers
                            .iter()
                            .filter(|(name, v)| {
                                is_secret_header(name)
                                    || marked.iter().any(|m| m.eq_ignore_ascii_case(name))
                                    || marked_here(v)
                            })
                            .filter_map(|(_, v)| v.as_str().or_else(|| v.get("value")?.as_str())),
                    );
                }
                secret_headers(item, out);
            }
        }
        _ => {}
    }
}

/// The last line of defence: redacts every event before the sinks it wraps see it.
pub struct Redacting {
    redactor: Arc<Redactor>,
    sinks: Vec<Box<dyn Sink>>,
}

impl Redacting {
    pub fn new(redactor: Arc<Redactor>, sinks: Vec<Box<dyn Sink>>) -> Redacting {
        Redacting { redactor, sinks }
    }
}

impl Sink for Redacting {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let record = self.redactor.redact_record(record);
        for sink in &mut self.sinks {
            sink.record(&record)?;
        }
        Ok(())
    }

    fn finish(&mut self) {
        for sink in &mut self.sinks {
            sink.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context::Resolver;
    use crate::plan::model::Plan;

    #[test]
    fn secret_headers_by_name() {
        for name in [
            "Authorization",
            "authorization",
            "Cookie",
            "X-Api-Key",
            "x-auth-token",
            "Proxy-Authorization",
        ] {
            assert!(is_secret_header(name), "{name}");
        }
        for name in ["Content-Type", "Accept", "X-Keyboard", "Tokenizer"] {
            assert!(!is_secret_header(name), "{name}");
        }
    }

    #[test]
    fn every_form_of_a_secret_goes() {
        let redactor = Redactor::new(["Bearer s3cr\"et/value+1", "ab"]);
        assert_eq!(
            redactor.redact("auth: Bearer s3cr\"et/value+1."),
            "auth: ***."
        );
        // The credential alone, as a server may echo it.
        assert_eq!(redactor.redact("token s3cr\"et/value+1"), "token ***");
        // JSON-escaped and percent-encoded.
        assert_eq!(
            redactor.redact(r#"{"t":"s3cr\"et/value+1"}"#),
            r#"{"t":"***"}"#
        );
        assert_eq!(redactor.redact("?t=s3cr%22et%2Fvalue%2B1"), "?t=***");
        // Too short to be a secret.
        assert_eq!(redactor.redact("abc"), "abc");
    }

    #[test]
    fn a_secret_that_is_a_word_of_the_format_never_lets_the_record_through_unredacted() {
        use crate::event::evaluation::{Evaluation, Outcome, Streak};
        use crate::event::{Event, Record};
        // A secret equal to an outcome's word, also used in free text.
        let redactor = Redactor::new(["violation"]);
        let record = Record {
            seq: 7,
            at: chrono::Utc::now(),
            event: Event::Evaluated {
                stage: Some("canary".to_owned()),
                check: 3,
                evaluation: Evaluation {
                    gate: "guard".to_owned(),
                    condition: "app.error_rate <= 1%".to_owned(),
                    outcome: Outcome::Violation,
                    value: Some(0.02),
                    threshold: Some(0.01),
                    streak: Streak {
                        count: 1,
                        needed: 1,
                        window: None,
                    },
                    fired: true,
                    evidence: None,
                    unit: None,
                    compare: None,
                },
            },
        };
        let mut leaky = record.clone();
        if let Event::Evaluated { evaluation, .. } = &mut leaky.event {
            evaluation.gate = "token=violation".to_owned();
        }
        let redacted = redactor.redact_record(&leaky);
        let Event::Evaluated { evaluation, .. } = &redacted.event else {
            panic!("the record keeps its kind: {redacted:?}");
        };
        assert_eq!(evaluation.gate, "token=***");
        assert_eq!(evaluation.outcome, Outcome::Violation);
        assert_eq!(redacted.seq, 7);
    }

    #[test]
    fn a_plan_s_secret_headers_are_filled_for_preflight_and_every_stage() {
        let plan: Plan = serde_saphyr::from_str(
            r#"
version: 1
name: p
probes:
  app:
    http:
      url: http://127.0.0.1:1/
      headers:
        X-Auth-Token: "tok-${{ stage.name }}-tail"
        X-Trace: "trace-${{ stage.name }}"
        X-Session: "sess-value"
      secret_headers: [x-session]
stages:
  - { name: first, traffic: 10, bake: 1m }
  - { name: second, traffic: 100, bake: 1m }
notify:
  - url: http://127.0.0.1:1/hook
    headers: { Cookie: "id=cookie-value" }
"#,
        )
        .unwrap();
        let resolver = Resolver::without_secrets(&plan, "run");
        let redactor = Redactor::for_run(&plan, &resolver);
        assert_eq!(
            redactor.redact("tok-first-tail tok-second-tail sess-value id=cookie-value"),
            "*** *** *** ***"
        );
        // Not a secret header: left alone.
        assert_eq!(redactor.redact("trace-first"), "trace-first");
    }

    #[test]
    fn a_secret_base64_encoded_alone_is_redacted() {
        let secret = "tok-0123456789abcdefghijklmnopqr";
        let redactor = Redactor::new([secret]);
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(secret);
            assert_eq!(redactor.redact(&format!("x {encoded} y")), "x *** y");
        }
        // A secret whose encoding uses `+` and `/`, in both alphabets.
        let secret = "\u{fb}\u{ff}\u{be}>?secret-value";
        let redactor = Redactor::new([secret]);
        assert!(STANDARD.encode(secret).contains(['+', '/']));
        for engine in [STANDARD, URL_SAFE] {
            let encoded = engine.encode(secret);
            assert_eq!(redactor.redact(&encoded), MASK, "{encoded}");
        }
    }

    #[test]
    fn a_secret_base64_encoded_inside_a_longer_text_is_redacted_at_each_alignment() {
        let secret = "hunter2-hunter2-hunter2";
        let redactor = Redactor::new([secret]);
        for before in ["", "a", "ab", "abc", "{\"auth\":\""] {
            for after in ["", "\"}", "x", "xy"] {
                let text = format!("{before}{secret}{after}");
                for engine in [STANDARD, URL_SAFE] {
                    let encoded = engine.encode(&text);
                    let redacted = redactor.redact(&encoded);
                    assert!(redacted.contains(MASK), "{text:?}: {encoded} -> {redacted}");
                    // What is left is at most the characters shared with the text around it.
                    let left = redacted.len() - MASK.len();
                    let around = engine.encode(before).len() + engine.encode(after).len() + 6;
                    assert!(left <= around, "{text:?}: {encoded} -> {redacted}");
                    // And nothing the secret alone decides is left: no run of it survives.
                    let alone = STANDARD.encode(secret);
                    assert!(!redacted.contains(&alone[..8]), "{redacted}");
                }
            }
        }
    }

    #[test]
    fn a_short_secret_s_base64_core_is_not_looked_for() {
        // 4 bytes: at most 5 characters depend on them alone.
        assert!(base64_forms(b"abcd").is_empty());
        // 6 bytes: 8 characters at offset 0, 7 at offsets 1 and 2.
        let forms = base64_forms(b"abcdef");
        assert!(forms.contains(&STANDARD.encode("abcdef")), "{forms:?}");
        assert!(
            forms.iter().all(|f| f.len() >= MIN_BASE64_CORE),
            "{forms:?}"
        );
        let redactor = Redactor::new(["abcdef"]);
        let at_one = STANDARD.encode("\0abcdef");
        assert_eq!(redactor.redact(&at_one), at_one);
        // 7 bytes: at least 8 characters at every alignment.
        let redactor = Redactor::new(["abcdefg"]);
        for before in ["", "\0", "\0\0"] {
            let encoded = STANDARD.encode(format!("{before}abcdefg."));
            assert!(redactor.redact(&encoded).contains(MASK), "{encoded}");
        }
    }

    #[test]
    fn json_strings_and_keys_are_redacted() {
        let redactor = Redactor::new(["hunter22"]);
        let mut value = serde_json::json!({"a": ["x hunter22"], "hunter22": 1, "n": 2});
        assert!(redactor.redact_json(&mut value));
        assert_eq!(value, serde_json::json!({"a": ["x ***"], "***": 1, "n": 2}));
        assert!(!redactor.redact_json(&mut value));
    }
}
