//! `--format text|json`: the one spelling of machine output on every command that prints for
//! both people and programs. `--json`, the older spelling, stays as a hidden alias so scripts
//! written against it keep working.

/// What a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: tables, event lines, the live view on a terminal.
    Text,
    /// For programs: JSON (events as JSON lines, one object each).
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Output {
    /// Output format: `text` for people, `json` for programs.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    format: Format,
    /// Same as `--format json`; kept hidden for scripts written before `--format`.
    #[arg(long, hide = true, conflicts_with = "format")]
    json: bool,
}

impl Output {
    pub fn json(&self) -> bool {
        self.json || self.format == Format::Json
    }
}
