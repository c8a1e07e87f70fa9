//! `edgenlu completions SHELL`: the shell's completion script for every command and flag.

use clap::CommandFactory;

/// Arguments of `edgenlu completions`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script to stdout.
pub fn run(args: &CompletionsArgs) -> std::io::Result<()> {
    let mut cmd = crate::Cli::command();
    // Written whole from a buffer: the generator panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "edgenlu", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
}
