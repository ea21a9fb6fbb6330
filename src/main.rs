//! The `promptd` binary: parse the command line, run the subcommand, map errors to an exit code.

mod cli;

use clap::Parser;

/// jemalloc instead of glibc's malloc: requests allocate on one worker thread and free on
/// another, which glibc serves with arena locks (a futex for every other request under load).
/// Cache hits at 32 connections: about 50k/s with glibc, 55k/s with jemalloc, same run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options ([`promptd::memory::JEMALLOC_CONF`]), read at its first allocation
/// (the `malloc_conf` symbol; prefixed `_rjem_` as tikv-jemalloc-sys builds jemalloc on Linux).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] = promptd::memory::JEMALLOC_CONF;

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
