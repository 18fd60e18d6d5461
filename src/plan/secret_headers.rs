//! `secret_headers` must name headers of the same request: a misspelt name would leave a secret
//! unredacted without a word (`docs/plan.md`, "Secrets").

use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::span::join;

/// An error for every `secret_headers` entry that names no header in the `headers` beside it.
pub fn check(document: &Value, out: &mut Vec<Diagnostic>) {
    let mut stack = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(names)) = map.get("secret_headers") {
                    let headers = map.get("headers").and_then(Value::as_object);
                    for (i, name) in names.iter().enumerate() {
                        let Some(name) = name.as_str() else { continue };
                        let known =
                            headers.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
                        if !known {
                            out.push(
                                Diagnostic::error(
                                    Code::BadValue,
                                    format!("{pointer}/secret_headers/{i}"),
                                    format!("`{name}` is not a header of this request"),
                                )
                                .with_help("`secret_headers` names headers set in `headers`"),
                            );
                        }
                    }
                }
                stack.extend(map.iter().map(|(k, v)| (join(&pointer, k), v)));
            }
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{pointer}/{i}"), v)),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_header_that_is_not_set_is_an_error() {
        let document = serde_json::json!({"probes": {"app": {"http": {
            "url": "http://x",
            "headers": {"X-Session": "abcd"},
            "secret_headers": ["x-session", "X-Sesion"],
        }}}});
        let mut out = Vec::new();
        check(&document, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].pointer, "/probes/app/http/secret_headers/1");
        assert!(out[0].message.contains("`X-Sesion`"), "{}", out[0].message);
    }
}
