//! The `promptd` binary: parse the command line, run the subcommand, map errors to an exit code.

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("promptd: error: {}", promptd::error_chain(e.as_ref()));
            std::process::exit(1);
        }
    }
}
