//! `completions SHELL` and `man`: files generated from the command line itself, so they cannot
//! fall behind it. Both print to stdout for the packager or the user to put where their shell or
//! `man` looks.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError};
use crate::exit_code;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan completions bash > ~/.local/share/bash-completion/completions/ion-plan\n  ion-plan completions zsh > ~/.zfunc/_ion-plan\n  ion-plan completions fish > ~/.config/fish/completions/ion-plan.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan man > ~/.local/share/man/man1/ion-plan.1\n  ion-plan man | man -l -"
)]
pub struct ManArgs {}

pub fn completions(args: &CompletionsArgs) -> Result<u8, CliError> {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ion-plan", &mut buffer);
    write(&buffer)
}

pub fn man(_args: &ManArgs) -> Result<u8, CliError> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buffer)
        .map_err(CliError::Unwritten)?;
    write(&buffer)
}

fn write(bytes: &[u8]) -> Result<u8, CliError> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Unwritten(e)),
        _ => Ok(exit_code::SUCCESS),
    }
}
