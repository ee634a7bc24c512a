//! `swarm` binary: arguments to `cli::run`, errors to one line and an exit code (1, or 130
//! when interrupted).

fn main() {
    one_malloc_arena();
    if let Err(e) = swarm::cli::run() {
        eprintln!("swarm: error: {}", swarm::cli::error_line(&e));
        // 130 for a run stopped by Ctrl-C or SIGTERM, as a shell reports SIGINT.
        std::process::exit(swarm::cli::exit_code(&e));
    }
}

/// glibc gives every thread that allocates its own malloc arena. Block buffers are
/// allocated by whichever tokio worker reads the socket and freed by whichever writes the
/// piece, so each worker's arena grows to hold most of the store budget on its own and
/// peak RSS grows with the number of workers; one arena holds the budget once. Its lock is
/// not contended at our rate of allocation (a few thousand large read buffers per GiB), so
/// it costs no CPU time. See PERFORMANCE.md, "What was found, and changed", item 10.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: `mallopt` only sets an allocator parameter; it runs first thing in `main`,
    // before any other thread exists, and has no memory-safety preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
