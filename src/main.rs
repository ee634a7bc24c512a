//! `swarm` binary: arguments to `cli::run`, errors to one line and an exit code.

fn main() {
    if let Err(e) = swarm::cli::run() {
        eprintln!("swarm: error: {}", swarm::cli::error_line(&e));
        std::process::exit(1);
    }
}
