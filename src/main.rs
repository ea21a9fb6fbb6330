//! The `promptd` binary: parse the command line, run the subcommand, map errors to an exit code.

mod cli;

use clap::Parser;

/// jemalloc instead of glibc's malloc: requests allocate on one worker thread and free on
/// another, which glibc serves with arena locks (a futex for every other request under load).
/// Cache hits at 32 connections: about 50k/s with glibc, 55k/s with jemalloc, same run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (the `malloc_conf` symbol; prefixed
/// `_rjem_` as tikv-jemalloc-sys builds jemalloc on Linux). Memory freed after a burst goes back
/// to the OS instead of staying with the daemon (1.1 GiB stayed after 300 clients with large
/// bodies left):
/// - `background_thread:true`: a jemalloc thread purges while the daemon is idle; without it
///   purging only happens on later allocations, so an idle daemon kept its peak;
/// - `dirty_decay_ms:1000`: freed pages are returned over about a second (jemalloc's default is
///   10 s) — a burst's memory is back within seconds, and a busy daemon reuses pages before then;
/// - `muzzy_decay_ms:0`: pages are released outright, not kept lazily freed.
///
/// `_RJEM_MALLOC_CONF` in the environment still overrides these.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
