//! `init`: a commented starting plan that validates, from a template embedded in the binary
//! (`templates/`), so a newcomer edits a working plan rather than a blank file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::exit_code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Template {
    /// A canary behind a router with an HTTP API, 5% → 100%, load-probed against legacy.
    Canary,
    /// A 0 → 100 switch through a load balancer's API, with a person's approval before it.
    BlueGreen,
    /// A canary behind nginx on one host; also writes `scripts/nginx-weights.sh` beside it.
    Nginx,
}

/// Where editors find the schema of a plan written anywhere (the schema's `$id`).
const MODELINE: &str = "# yaml-language-server: $schema=https://github.com/ion-plan/ion-plan/raw/main/schemas/plan.schema.json";

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::Canary => "canary",
            Template::BlueGreen => "blue-green",
            Template::Nginx => "nginx",
        }
    }

    /// The plan's text. Blue-green and nginx are the bundled example plans (`plans/`), so the
    /// templates cannot drift from plans that CI validates; their modeline points at `../schemas/`
    /// of this repository and becomes the schema's URL.
    fn plan(self) -> String {
        let bundled = match self {
            Template::Canary => return include_str!("../../templates/canary.yaml").to_owned(),
            Template::BlueGreen => include_str!("../../plans/blue-green.yaml"),
            Template::Nginx => include_str!("../../plans/nginx-canary.yaml"),
        };
        let body = bundled.split_once('\n').map_or(bundled, |(_, rest)| rest);
        format!(
            "{MODELINE}\n# Written by `ion-plan init --template {}`: a starting point. Replace the vars, the URLs\n\
             # and the thresholds with yours, then `ion-plan validate` and `ion-plan run --dry-run` it.\n{body}",
            self.name()
        )
    }

    /// Files the plan runs, relative to its folder, with their text.
    fn scripts(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Template::Nginx => &[(
                "scripts/nginx-weights.sh",
                include_str!("../../plans/scripts/nginx-weights.sh"),
            )],
            Template::Canary | Template::BlueGreen => &[],
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan init                                   # plans/canary.yaml\n  ion-plan init --template blue-green plans/billing.yaml\n  ion-plan init --template nginx plans/checkout.yaml   # and plans/scripts/nginx-weights.sh"
)]
pub struct Args {
    /// Which starting plan.
    #[arg(long, value_enum, default_value_t = Template::Canary)]
    template: Template,
    /// Where to write it. Default: `plans/TEMPLATE.yaml` in the current folder.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| Path::new("plans").join(format!("{}.yaml", args.template.name())));
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let plan = args.template.plan();
    let mut files = vec![(path.clone(), plan.as_str(), false)];
    files.extend(
        args.template
            .scripts()
            .iter()
            .map(|(name, text)| (dir.join(name), *text, true)),
    );
    // Every file is checked before any is written: a refusal leaves nothing half-made.
    if !args.force
        && let Some((existing, ..)) = files.iter().find(|(p, ..)| p.exists())
    {
        return Err(CliError::Init(format!(
            "{} exists; nothing was written (--force overwrites it)",
            existing.display()
        )));
    }
    for (file, text, executable) in &files {
        write(file, text, *executable)
            .map_err(|e| CliError::Init(format!("cannot write {}: {e}", file.display())))?;
        eprintln!("wrote {}", file.display());
    }
    eprintln!(
        "next: ion-plan validate {0}\n      ion-plan run --dry-run {0}",
        path.display()
    );
    Ok(exit_code::SUCCESS)
}

fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)?;
    file.write_all(text.as_bytes())
}
