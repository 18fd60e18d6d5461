//! Printing validation findings: for people (miette snippets), as JSON, or as GitHub annotations.

use std::fmt::Write;
use std::path::PathBuf;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use serde::Serialize;

use crate::plan::diagnostic::{Located, Severity};
use crate::plan::load::ReadError;
use crate::plan::validate::Report;
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

/// A located diagnostic as miette renders it, with only the lines it shows.
#[derive(Debug)]
struct Rendered<'a> {
    located: &'a Located,
    source: Excerpt,
}

impl std::fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.located.diagnostic.message)
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
        self.located
            .diagnostic
            .help
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
        let name = outcome.name();
        match outcome {
            FileOutcome::Unreadable(_, error) => {
                let mut message = error.to_string();
                if let Some(source) = std::error::Error::source(error) {
                    let _ = write!(message, ": {source}");
                }
                let _ = writeln!(out, "  × {message}\n");
                invalid += 1;
            }
            FileOutcome::Checked(report) => {
                for located in &report.diagnostics {
                    let rendered = Rendered {
                        located,
                        source: Excerpt::new(name.clone(), &report.source, located),
                    };
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

/// GitHub workflow commands: data escapes `%`, CR and LF; properties also `:` and `,`.
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
        let file = property(&outcome.name());
        match outcome {
            FileOutcome::Unreadable(_, error) => {
                let _ = writeln!(
                    out,
                    "::error file={file},title=io::{}",
                    data(&io_message(error))
                );
            }
            FileOutcome::Checked(report) => {
                for l in &report.diagnostics {
                    let d = &l.diagnostic;
                    let mut message = d.message.clone();
                    if let Some(help) = &d.help {
                        let _ = write!(message, "\nhelp: {help}");
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
