//! A spawned process for tests: killed and reaped when dropped (also on panic), waited for
//! with a bound, its stderr read once it has exited.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `cmd` with no stdin or stdout, stderr piped, and `RUST_LOG` unset.
    pub fn start(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a test process");
        ChildGuard(child)
    }

    /// Poll until the process exits; panics (and the guard kills it) past `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {limit:?}",
                self.0.id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the (exited) process wrote to stderr.
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            e.read_to_string(&mut s).expect("reading stderr");
        }
        s
    }

    pub fn interrupt(&self) {
        self.signal("INT");
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.0.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} failed");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
