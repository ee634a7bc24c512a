//! A process on a pseudo-terminal of a chosen size, and a terminal model to replay what it
//! wrote: enough of a terminal to find lines wider than it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};
use unicode_width::UnicodeWidthChar;

use super::BIN;

/// A child whose stdout and stderr are a pty of a given size; everything it writes is
/// collected by a reader thread. Killed when dropped.
pub struct PtyChild {
    pub child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl PtyChild {
    pub fn spawn(args: &[&str], cols: u16) -> PtyChild {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let size = Winsize {
            ws_row: 40,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        tcsetwinsize(&master, size).expect("setting the pty's size");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .expect("opening the pty");
        let child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave)
            .spawn()
            .expect("spawning swarm");
        // Our copies of the slave are gone with the Command: the reader sees EOF (EIO) when
        // the child exits.
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let mut master = std::fs::File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtyChild { child, out }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Polls until `pred` holds of the output so far; false past `limit` or on exit.
    pub fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if pred(&self.text()) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return pred(&self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what is left in the pty.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "swarm did not exit within {limit:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success(), "kill {sig} failed");
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replays `out` on a terminal `cols` wide: the cursor column moves with printed text and
/// the sequences indicatif sends (CR, LF, CSI n G/C/D, the rest leave it). Returns every
/// text line as last seen at each CR or LF, and the lines that went past the right edge.
pub fn replay(out: &str, cols: usize) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut overflows) = (Vec::new(), Vec::new());
    let mut col = 0usize;
    let mut cur = String::new();
    let mut chars = out.chars().peekable();
    let end_line = |cur: &mut String, lines: &mut Vec<String>| {
        if !cur.trim().is_empty() {
            lines.push(std::mem::take(cur));
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                end_line(&mut cur, &mut lines);
                col = 0;
            }
            '\x1b' => {
                // CSI: ESC [ params final; anything else: skip the next character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    let mut params = String::new();
                    for p in chars.by_ref() {
                        if ('@'..='~').contains(&p) {
                            let n: usize = params.parse().unwrap_or(1);
                            match p {
                                'G' => col = n.saturating_sub(1),
                                'C' => col += n,
                                'D' => col = col.saturating_sub(n),
                                _ => {}
                            }
                            break;
                        }
                        params.push(p);
                    }
                } else {
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => {
                col += c.width().unwrap_or(0);
                cur.push(c);
                if col > cols {
                    overflows.push(cur.clone());
                }
            }
        }
    }
    end_line(&mut cur, &mut lines);
    (lines, overflows)
}
