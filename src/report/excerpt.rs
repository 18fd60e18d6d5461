//! The few lines of a plan that one finding shows, cut out once so that printing a finding costs
//! the size of its snippet, not of the file (`docs/plan.md`, "Limits"): miette scans
//! its source from the start for every snippet, and pads with a width that must fit in a `u16`.
//!
//! A plan is outside text (`docs/plan.md`, "Outside text"): the excerpt shows each control
//! character of a line (ESC, a lone CR is a line break already), and each Unicode line
//! separator, bidi override or isolate, as one `\u{fffd}`, so that columns and the underline
//! stay where they were. Tabs stay: miette expands them to spaces.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::plan::diagnostic::Located;
use crate::plan::load::Source;
use crate::plan::span::ByteSpan;

/// Bytes of a line shown before the finding when the line is cut.
const BEFORE: usize = 40;
/// Bytes of a line shown in all when it is cut.
const WIDTH: usize = 120;
/// A span over more lines than this is shown on its first line only.
const MAX_SPAN_LINES: usize = 20;

/// The lines around one finding, long lines cut to a window around it, and the finding's span
/// in that text. Line numbers and the `file:line:col` header stay those of the file.
#[derive(Debug)]
pub struct Excerpt {
    name: String,
    text: String,
    /// 1-based line number, in the file, of the excerpt's first line.
    first_line: usize,
    /// The finding's span in `text`.
    pub span: ByteSpan,
    /// The finding's 1-based line and column in the file.
    line: usize,
    column: usize,
}

impl Excerpt {
    pub fn new(name: String, source: &Source, located: &Located) -> Excerpt {
        let text = &source.text;
        let lines = &source.lines;
        let start = located.span.offset.min(text.len());
        let end = (start + located.span.len).min(text.len());
        let first = lines.line_of(start);
        let last = lines.line_of(end.saturating_sub(1).max(start));
        let context_start = first.saturating_sub(1).max(1);
        let context_end = (last + 1).min(lines.len());
        // Lines are measured in bytes so that a finding costs the size of its snippet even on a
        // megabyte-long line; a short line of wide characters is measured exactly.
        let long = |line: usize| {
            let range = lines.line_range(text, line);
            range.len() > 4 * WIDTH || (range.len() > WIDTH && text[range].chars().count() > WIDTH)
        };
        let cut = (context_start..=context_end).any(long);
        let single = cut || last - first > MAX_SPAN_LINES;
        let (context_end, last) = if single {
            ((first + 1).min(lines.len()), first)
        } else {
            (context_end, last)
        };
        // The window kept on every line, in bytes from the line's start, around the finding.
        let from = if cut {
            (start - lines.line_range(text, first).start).saturating_sub(BEFORE)
        } else {
            0
        };
        let mut out = String::new();
        let mut span = ByteSpan::new(0, 0);
        for line in context_start..=context_end {
            let range = lines.line_range(text, line);
            let full = &text[range.clone()];
            let (kept, kept_start) = if cut { window(full, from) } else { (full, 0) };
            if cut && kept_start > 0 {
                out.push('…');
            }
            let base = out.len();
            out.extend(kept.chars().map(shown));
            // Byte offsets in `kept` to offsets in `out`.
            let at_in = |offset: usize| base + shown_len(&kept[..kept.floor_char_boundary(offset)]);
            if cut && kept_start + kept.len() < full.len() {
                out.push('…');
            }
            let kept_range = range.start + kept_start..range.start + kept_start + kept.len();
            if line == first {
                let at = start.clamp(kept_range.start, kept_range.end);
                span.offset = at_in(at - kept_range.start);
                if line == last || single {
                    let stop = end.clamp(at, kept_range.end);
                    span.len = at_in(stop - kept_range.start) - span.offset;
                }
            }
            if line == last && !single && line != first {
                let stop = end.clamp(kept_range.start, kept_range.end);
                span.len = at_in(stop - kept_range.start) - span.offset;
            }
            if line < context_end {
                out.push('\n');
            }
        }
        Excerpt {
            name,
            text: out,
            first_line: context_start,
            span,
            line: located.line,
            column: located.column,
        }
    }
}

/// Whether a character of a line is shown as `\u{fffd}`: a control character other than tab
/// (C0, DEL, C1), a Unicode line or paragraph separator, a bidi override or isolate — the
/// characters [`crate::report::escape::terminal`] escapes.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A character of a line as the excerpt shows it.
fn shown(c: char) -> char {
    if hidden(c) { '\u{fffd}' } else { c }
}

/// The length in bytes of `text` as the excerpt shows it.
fn shown_len(text: &str) -> usize {
    text.chars().map(|c| shown(c).len_utf8()).sum()
}

/// The part of `line` from byte `from` on, at most `WIDTH` bytes (both moved back to a character
/// boundary), and its byte start.
fn window(line: &str, from: usize) -> (&str, usize) {
    let start = line.floor_char_boundary(from.min(line.len()));
    let end = line.floor_char_boundary((start + WIDTH).min(line.len()));
    (&line[start..end], start)
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        // The header names the finding's own place, even when its line was cut.
        let (line, column) = if *span == SourceSpan::from(self.span) && context_lines_before == 0 {
            (self.line - 1, self.column - 1)
        } else {
            (inner.line() + self.first_line - 1, inner.column())
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            line,
            column,
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diagnostic::{Code, Diagnostic};

    fn located(source: &Source, offset: usize, len: usize) -> Located {
        let (line, column) = source.lines.line_col(&source.text, offset);
        Located {
            diagnostic: Diagnostic::error(Code::Schema, "", "x"),
            span: ByteSpan::new(offset, len),
            line,
            column,
        }
    }

    #[test]
    fn short_lines_are_kept_whole_with_one_line_of_context() {
        let source = Source::new("p.yaml", "a: 1\nb: 2\nc: 3\nd: 4\n".to_owned());
        let excerpt = Excerpt::new("p.yaml".into(), &source, &located(&source, 10, 4));
        assert_eq!(excerpt.text, "b: 2\nc: 3\nd: 4");
        assert_eq!(excerpt.first_line, 2);
        assert_eq!(&excerpt.text[excerpt.span.offset..][..4], "c: 3");
    }

    #[test]
    fn a_long_line_is_cut_around_the_finding() {
        let text = format!("a: 1\nb: [{}bad]\nc: 3\n", "x, ".repeat(30_000));
        let source = Source::new("p.yaml", text);
        let offset = source.text.find("bad").unwrap();
        let excerpt = Excerpt::new("p.yaml".into(), &source, &located(&source, offset, 3));
        assert!(excerpt.text.len() < 3 * (WIDTH + 8), "{}", excerpt.text);
        assert_eq!(&excerpt.text[excerpt.span.offset..][..3], "bad");
        assert!(excerpt.text.contains("…"), "{}", excerpt.text);
        assert!(excerpt.text.contains("x, x, bad]"), "{}", excerpt.text);
        assert_eq!(excerpt.first_line, 1);
    }

    #[test]
    fn control_characters_are_shown_one_for_one() {
        let text = "a: 1\nb: \"x\x1b[2J\u{9b}\u{202e}\tbad\"\nc: 3\n";
        let source = Source::new("p.yaml", text.to_owned());
        let offset = source.text.find("bad").unwrap();
        let excerpt = Excerpt::new("p.yaml".into(), &source, &located(&source, offset, 3));
        assert_eq!(
            excerpt.text,
            "a: 1\nb: \"x\u{fffd}[2J\u{fffd}\u{fffd}\tbad\"\nc: 3"
        );
        assert_eq!(
            &excerpt.text[excerpt.span.offset..][..excerpt.span.len],
            "bad"
        );
        // Across lines, the span ends where it did.
        let start = source.text.find('x').unwrap();
        let end = source.text.find("c:").unwrap() + 1;
        let excerpt = Excerpt::new(
            "p.yaml".into(),
            &source,
            &located(&source, start, end - start),
        );
        assert_eq!(
            &excerpt.text[excerpt.span.offset..][..excerpt.span.len],
            "x\u{fffd}[2J\u{fffd}\u{fffd}\tbad\"\nc"
        );
    }
}
