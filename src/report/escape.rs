//! Outside text is data (`docs/plan.md`, "Outside text"): probe errors, program output, metric
//! names and scenario text are escaped for where they are printed — a terminal or CI log,
//! Markdown, HTML, Slack — so they cannot move the cursor, hide text, start a CI workflow
//! command (`::error::…`) or inject markup. JSON output and the journal stay raw JSON.

use std::fmt::Write as _;

use crate::event::Record;

/// Text for a terminal or a CI log, on one line: control characters (C0 — newlines, CR, ESC —,
/// DEL, C1), the Unicode line and paragraph separators, and bidi overrides and isolates are
/// shown as escapes (`\n`, `\r`, `\x1b`, `\u{2028}`, `\u{202e}`), and a leading `::` is shown
/// as `\::` so the text cannot start a workflow command.
pub fn terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    if text.starts_with("::") {
        out.push('\\');
    }
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            '\u{80}'..='\u{9f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether [`terminal`] would change the text.
fn needs_terminal(text: &str) -> bool {
    text.starts_with("::")
        || text.chars().any(|c| {
            c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
}

/// Escapes every string (and object key) of a JSON value for a terminal; whether any changed.
fn terminal_json(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) if needs_terminal(text) => {
            *text = terminal(text);
            true
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| terminal_json(item) | changed),
        serde_json::Value::Object(map) => {
            let mut changed = false;
            for (key, mut item) in std::mem::take(map) {
                changed |= terminal_json(&mut item);
                changed |= needs_terminal(&key);
                map.insert(
                    if needs_terminal(&key) {
                        terminal(&key)
                    } else {
                        key
                    },
                    item,
                );
            }
            changed
        }
        _ => false,
    }
}

/// A record with every string escaped by [`terminal`], for printing as event lines.
pub fn terminal_record(record: &Record) -> Record {
    let Ok(mut value) = serde_json::to_value(record) else {
        return record.clone();
    };
    if !terminal_json(&mut value) {
        return record.clone();
    }
    serde_json::from_value(value).unwrap_or_else(|_| record.clone())
}

/// Text for Markdown, inline or in a table cell: [`terminal`] first (no raw newline or CR can
/// end a cell), then the characters Markdown and HTML give a meaning: `\`, `` ` ``, `*`, `_`,
/// `[`, `]`, `|` are backslash-escaped, `<`, `>`, `&` become entities.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in terminal(text).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for HTML element content or a quoted attribute.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Slack message: `&`, `<` and `>` as Slack asks, so `<!channel>` or `<url|text>`
/// from outside text are shown, not acted on.
pub fn slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_has_no_control_characters_and_starts_no_workflow_command() {
        let hostile = "::error::pwned\r\x1b[31mred\n::warning::x\u{9b}\u{202e}txt\u{2066}\u{7f}";
        let shown = terminal(hostile);
        assert_eq!(
            shown,
            "\\::error::pwned\\r\\x1b[31mred\\n::warning::x\\u{9b}\\u{202e}txt\\u{2066}\\x7f"
        );
        assert!(!shown.chars().any(char::is_control));
        assert!(!shown.lines().any(|l| l.starts_with("::")));
        assert_eq!(terminal("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(!needs_terminal("plain text, ünïcode ✓"));
        assert!(needs_terminal("a\u{202e}"));
        assert_eq!(terminal("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn markdown_escapes_markup_and_keeps_one_line() {
        assert_eq!(
            markdown("<script>a|b</script> *x* _y_ [l](u) `c` & \\\r\n"),
            "&lt;script&gt;a\\|b&lt;/script&gt; \\*x\\* \\_y\\_ \\[l\\](u) \\`c\\` &amp; \\\\\\\\r\\\\n"
        );
    }

    #[test]
    fn html_and_slack_escape_their_markup() {
        assert_eq!(html("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
        assert_eq!(
            slack("<!channel> <http://x|click> & more"),
            "&lt;!channel&gt; &lt;http://x|click&gt; &amp; more"
        );
    }

    #[test]
    fn records_are_escaped_string_by_string() {
        let record: Record = serde_json::from_value(serde_json::json!({
            "seq": 1, "at": "2026-01-01T00:00:00Z",
            "event": {"paused": {"stage": "s", "reason": "a\u{1b}[2Jb\n::error::x"}}
        }))
        .unwrap();
        let shown = terminal_record(&record);
        let crate::event::Event::Paused { reason, .. } = shown.event else {
            panic!("{shown:?}");
        };
        assert_eq!(reason, "a\\x1b[2Jb\\n::error::x");
    }
}
