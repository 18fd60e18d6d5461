//! `${{ vars.NAME }}`, `${{ env.NAME }}`, `${{ stage.name }}`, `${{ stage.traffic }}` and
//! `${{ run.id }}`: finding them in a string, and filling them in with secrets kept apart.

use std::fmt;

/// What a `${{ … }}` refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Var(String),
    /// A secret: its value never appears in output.
    Env(String),
    StageName,
    StageTraffic,
    RunId,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Var(name) => write!(f, "vars.{name}"),
            Reference::Env(name) => write!(f, "env.{name}"),
            Reference::StageName => f.write_str("stage.name"),
            Reference::StageTraffic => f.write_str("stage.traffic"),
            Reference::RunId => f.write_str("run.id"),
        }
    }
}

/// One `${{ … }}` in a string, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub reference: Reference,
    pub start: usize,
    pub len: usize,
}

/// A `${{ … }}` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub message: String,
    pub start: usize,
    pub len: usize,
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// Every placeholder in `text`, in order.
pub fn placeholders(text: &str) -> Result<Vec<Placeholder>, InterpolationError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find(OPEN) {
        let start = rest + found;
        let inner_start = start + OPEN.len();
        let Some(close) = text[inner_start..].find(CLOSE) else {
            return Err(InterpolationError {
                message: "`${{` is never closed with `}}`".into(),
                start,
                len: OPEN.len(),
            });
        };
        let end = inner_start + close + CLOSE.len();
        let inner = text[inner_start..inner_start + close].trim();
        let error = |message: String| InterpolationError {
            message,
            start,
            len: end - start,
        };
        let (namespace, name) = inner.split_once('.').ok_or_else(|| {
            error(format!(
                "`{inner}` is not a reference: write e.g. `vars.NAME`"
            ))
        })?;
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !valid_name {
            return Err(error(format!("`{name}` is not a valid name")));
        }
        let reference = match (namespace, name) {
            ("vars", name) => Reference::Var(name.to_owned()),
            ("env", name) => Reference::Env(name.to_owned()),
            ("stage", "name") => Reference::StageName,
            ("stage", "traffic") => Reference::StageTraffic,
            ("run", "id") => Reference::RunId,
            ("stage" | "run", other) => {
                return Err(error(format!(
                    "`{namespace}.{other}` does not exist; use {}",
                    if namespace == "stage" {
                        "`stage.name` or `stage.traffic`"
                    } else {
                        "`run.id`"
                    }
                )));
            }
            (other, _) => {
                return Err(error(format!(
                    "unknown namespace `{other}`; use vars, env, stage or run"
                )));
            }
        };
        out.push(Placeholder {
            reference,
            start,
            len: end - start,
        });
        rest = end;
    }
    Ok(out)
}

/// A string with placeholders filled: the real value, and the one safe to print or store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub value: String,
    /// `env` values replaced by `***`.
    pub redacted: String,
}

/// Fills every placeholder of `text` using `resolve`; `None` from it is an unknown reference.
pub fn fill(
    text: &str,
    resolve: impl Fn(&Reference) -> Option<String>,
) -> Result<Filled, InterpolationError> {
    let mut value = String::with_capacity(text.len());
    let mut redacted = String::with_capacity(text.len());
    let mut last = 0;
    for placeholder in placeholders(text)? {
        let literal = &text[last..placeholder.start];
        value.push_str(literal);
        redacted.push_str(literal);
        let filled = resolve(&placeholder.reference).ok_or_else(|| InterpolationError {
            message: format!("`{}` has no value", placeholder.reference),
            start: placeholder.start,
            len: placeholder.len,
        })?;
        value.push_str(&filled);
        if matches!(placeholder.reference, Reference::Env(_)) {
            redacted.push_str("***");
        } else {
            redacted.push_str(&filled);
        }
        last = placeholder.start + placeholder.len;
    }
    value.push_str(&text[last..]);
    redacted.push_str(&text[last..]);
    Ok(Filled { value, redacted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_of_reference() {
        let text = "${{ vars.service }}:${{env.TOKEN}} ${{ stage.traffic }} ${{ stage.name }} ${{ run.id }}";
        let refs: Vec<Reference> = placeholders(text)
            .unwrap()
            .into_iter()
            .map(|p| p.reference)
            .collect();
        assert_eq!(
            refs,
            vec![
                Reference::Var("service".into()),
                Reference::Env("TOKEN".into()),
                Reference::StageTraffic,
                Reference::StageName,
                Reference::RunId
            ]
        );
    }

    #[test]
    fn bad_references_are_errors_with_their_range() {
        let e = placeholders("x ${{ vars.a").unwrap_err();
        assert_eq!((e.start, e.len), (2, 3));
        assert!(
            placeholders("${{ secrets.a }}")
                .unwrap_err()
                .message
                .contains("namespace")
        );
        assert!(
            placeholders("${{ stage.weight }}")
                .unwrap_err()
                .message
                .contains("stage.traffic")
        );
        assert!(placeholders("${{ vars }}").is_err());
        assert!(placeholders("${{ vars.a b }}").is_err());
    }

    #[test]
    fn env_values_are_redacted_and_never_split() {
        let filled = fill("Bearer ${{ env.TOKEN }} to ${{ vars.host }}", |r| match r {
            Reference::Env(_) => Some("s3cr3t value".into()),
            Reference::Var(_) => Some("example".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(filled.value, "Bearer s3cr3t value to example");
        assert_eq!(filled.redacted, "Bearer *** to example");
        assert!(fill("${{ run.id }}", |_| None).is_err());
    }
}
