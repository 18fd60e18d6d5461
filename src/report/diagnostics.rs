//! Printing validation findings: for people (miette snippets), as JSON, or as GitHub annotations.

use std::fmt::Write;
use std::path::PathBuf;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use serde::Serialize;

use crate::plan::diagnostic::{Located, Severity};
use crate::plan::load::ReadError;
use crate::plan::validate::Report;
use crate::report::escape;
use crate::report::excerpt::Excerpt;

/// Output formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Snippets with the fault underlined.
    Human,
    /// `{"files":[{"file","valid","diagnostics":[…]}]}`.
    Json,
    /// `::error file=…,line=…,col=…,title=CODE::message` workflow commands.
    Github,
}

/// What became of one file.
#[derive(Debug)]
pub enum FileOutcome {
    Checked(Box<Report>),
    Unreadable(PathBuf, ReadError),
}

impl FileOutcome {
    pub fn is_valid(&self, strict: bool) -> bool {
        match self {
            FileOutcome::Checked(report) => report.is_valid(strict),
            FileOutcome::Unreadable(..) => false,
        }
    }

    fn name(&self) -> String {
        match self {
            FileOutcome::Checked(report) => report.source.name(),
            FileOutcome::Unreadable(path, _) => path.display().to_string(),
        }
    }
}

/// Renders all outcomes in one format.
pub fn render(outcomes: &[FileOutcome], format: Format, strict: bool, color: bool) -> String {
    match format {
        Format::Human => human(outcomes, strict, color),
        Format::Json => json(outcomes, strict),
        Format::Github => github(outcomes),
    }
}

/// A located diagnostic as miette renders it, with only the lines it shows. Its message and
/// help quote plan text, which is outside text: they are escaped for a terminal
/// ([`escape::terminal`]), and the snippet shows control characters as `\u{fffd}`
/// ([`Excerpt`]).
#[derive(Debug)]
struct Rendered<'a> {
    located: &'a Located,
    source: Excerpt,
    message: String,
    help: Option<String>,
}

impl<'a> Rendered<'a> {
    fn new(name: String, report: &Report, located: &'a Located) -> Rendered<'a> {
        Rendered {
            located,
            source: Excerpt::new(name, &report.source, located),
            message: escape::terminal(&located.diagnostic.message),
            help: located.diagnostic.help.as_deref().map(escape::terminal),
        }
    }
}

impl std::fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.located.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.located.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.source.span;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".to_owned()),
            span,
        ))))
    }
}

fn human(outcomes: &[FileOutcome], strict: bool, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    let mut invalid = 0;
    for outcome in outcomes {
        // A file's name may come from a pull request too (`validate plans/*.yaml`).
        let name = escape::terminal(&outcome.name());
        match outcome {
            FileOutcome::Unreadable(_, error) => {
                let message = escape::terminal(&io_message(error));
                let _ = writeln!(out, "  × {message}\n");
                invalid += 1;
            }
            FileOutcome::Checked(report) => {
                for located in &report.diagnostics {
                    let rendered = Rendered::new(name.clone(), report, located);
                    let _ = handler.render_report(&mut out, &rendered);
                    out.push('\n');
                }
                let errors = report.count(Severity::Error);
                let warnings = report.count(Severity::Warning);
                let verdict = if report.is_valid(strict) {
                    "valid"
                } else {
                    invalid += 1;
                    "invalid"
                };
                let _ = writeln!(
                    out,
                    "{name}: {verdict} ({errors} error{}, {warnings} warning{})",
                    plural(errors),
                    plural(warnings)
                );
            }
        }
    }
    if outcomes.len() > 1 {
        let _ = writeln!(
            out,
            "{} of {} plans valid",
            outcomes.len() - invalid,
            outcomes.len()
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    files: Vec<JsonFile<'a>>,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: String,
    valid: bool,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: std::borrow::Cow<'a, str>,
    line: usize,
    column: usize,
    pointer: &'a str,
    help: Option<&'a str>,
}

fn json(outcomes: &[FileOutcome], strict: bool) -> String {
    let files = outcomes
        .iter()
        .map(|outcome| JsonFile {
            file: outcome.name(),
            valid: outcome.is_valid(strict),
            diagnostics: match outcome {
                FileOutcome::Unreadable(_, error) => vec![JsonDiagnostic {
                    severity: Severity::Error,
                    code: "io",
                    message: io_message(error).into(),
                    line: 1,
                    column: 1,
                    pointer: "",
                    help: None,
                }],
                FileOutcome::Checked(report) => report
                    .diagnostics
                    .iter()
                    .map(|l| JsonDiagnostic {
                        severity: l.diagnostic.severity,
                        code: l.diagnostic.code.as_str(),
                        message: l.diagnostic.message.as_str().into(),
                        line: l.line,
                        column: l.column,
                        pointer: &l.diagnostic.pointer,
                        help: l.diagnostic.help.as_deref(),
                    })
                    .collect(),
            },
        })
        .collect();
    let mut text =
        serde_json::to_string_pretty(&JsonOutput { files }).expect("diagnostics serialize");
    text.push('\n');
    text
}

fn io_message(error: &ReadError) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// GitHub workflow commands: data escapes `%`, CR and LF; properties also `:` and `,`. Plan
/// text (messages, help) and file names are escaped for a terminal first
/// ([`escape::terminal`]): a CI log shows the annotation's text, and no ESC or other control
/// character may reach it.
fn github(outcomes: &[FileOutcome]) -> String {
    fn data(text: &str) -> String {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn property(text: &str) -> String {
        data(text).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for outcome in outcomes {
        let file = property(&escape::terminal(&outcome.name()));
        match outcome {
            FileOutcome::Unreadable(_, error) => {
                let _ = writeln!(
                    out,
                    "::error file={file},title=io::{}",
                    data(&escape::terminal(&io_message(error)))
                );
            }
            FileOutcome::Checked(report) => {
                for l in &report.diagnostics {
                    let d = &l.diagnostic;
                    let mut message = escape::terminal(&d.message);
                    if let Some(help) = &d.help {
                        let _ = write!(message, "\nhelp: {}", escape::terminal(help));
                    }
                    let _ = writeln!(
                        out,
                        "::{} file={file},line={},col={},title={}::{}",
                        d.severity,
                        l.line,
                        l.column,
                        property(d.code.as_str()),
                        data(&message)
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load::Source;
    use crate::plan::validate::{Checks, validate_source};

    /// A stage name (quoted in the message) with ESC, CR, LF, `%` and a workflow command.
    const QUOTED: &str = "version: 1\nname: x\nstages:\n  - name: \"a\\e[2J\\r\\n::error::b%0A,c:\"\n    traffic: 100\n    bake: 0s\n";
    /// A source line with a raw ESC sequence, a C1 CSI and a bidi override.
    const RAW: &str = "version: 1\nname: x\nstages:\n  - name: \"a\x1b[2J\u{9b}1m\u{202e}\"\n    traffic: 100\n    bake: 0s\n";

    fn outcomes(text: &str) -> Vec<FileOutcome> {
        let report = validate_source(
            Source::new("p.yaml", text.to_owned()),
            Checks { filesystem: false },
        );
        assert!(!report.diagnostics.is_empty());
        vec![FileOutcome::Checked(Box::new(report))]
    }

    fn clean(out: &str) -> bool {
        !out.chars()
            .any(|c| c != '\n' && (c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)))
    }

    #[test]
    fn human_output_escapes_plan_text_and_hides_control_characters_in_snippets() {
        let out = render(&outcomes(QUOTED), Format::Human, false, false);
        assert!(clean(&out), "{out:?}");
        assert!(out.contains(r"a\x1b[2J\r\n::error::b%0A,c:"), "{out}");
        let out = render(&outcomes(RAW), Format::Human, false, false);
        assert!(clean(&out), "{out:?}");
        assert!(out.contains("\"a\u{fffd}[2J\u{fffd}1m\u{fffd}\""), "{out}");
    }

    #[test]
    fn github_output_is_one_line_per_finding_with_plan_text_escaped() {
        for text in [QUOTED, RAW] {
            let out = render(&outcomes(text), Format::Github, false, false);
            assert!(clean(&out), "{out:?}");
            assert_eq!(out.lines().count(), 1, "{out}");
            assert!(out.starts_with("::error file=p.yaml,line=4,col="), "{out}");
        }
        // The `%` of the plan is `%25`, so `%0A` cannot become a line break.
        let out = render(&outcomes(QUOTED), Format::Github, false, false);
        assert!(out.contains(r"a\x1b[2J\r\n::error::b%250A,c:"), "{out}");
    }

    #[test]
    fn json_output_keeps_plan_text_raw() {
        let out = render(&outcomes(QUOTED), Format::Json, false, false);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let message = value["files"][0]["diagnostics"][0]["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("a\x1b[2J\r\n::error::b%0A,c:"),
            "{message:?}"
        );
    }
}
