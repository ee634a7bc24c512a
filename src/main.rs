//! `swarm` binary: arguments to `cli::run`, errors to one line and an exit code.

fn main() {
    one_malloc_arena();
    if let Err(e) = swarm::cli::run() {
        eprintln!("swarm: error: {}", swarm::cli::error_line(&e));
        std::process::exit(1);
    }
}

/// glibc gives every thread that allocates its own malloc arena. Block buffers are
/// allocated by whichever tokio worker reads the socket and freed by whichever writes the
/// piece, so each worker's arena grows to hold most of the store budget on its own: peak
/// RSS for a 1 GiB download was 23–27 MiB with two workers, 19–20 MiB with one arena.
/// The arena lock is not contended at our rate of allocation (a few thousand large read
/// buffers per GiB, measured: no change in CPU time).
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
