//! Tracers run by the harnesses: cowscope started and waited for until it
//! traces, and any tracer stopped with SIGINT, as a user's Ctrl-C would.

use crate::setup;
use anyhow::{Context, Result, anyhow};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A tracer process, interrupted (SIGINT) when finished or dropped, and
/// killed if it has not exited 10 s after that.
pub struct Interrupted(Option<Child>);

impl Interrupted {
    /// Takes charge of a started tracer.
    pub fn new(child: Child) -> Interrupted {
        Interrupted(Some(child))
    }

    /// The tracer's PID.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Interrupts the tracer and collects what it printed (its stdout, when piped).
    pub fn finish(mut self) -> Result<Output> {
        let child = self.0.take().context("already finished")?;
        interrupt(child.id())?;
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Interrupted {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = interrupt(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends SIGINT to `pid`.
fn interrupt(pid: u32) -> Result<()> {
    setup::output(Command::new("kill").arg("-INT").arg(pid.to_string())).map(|_| ())
}

/// Starts `target/release/cowscope record -p PID EXTRA...` and returns once
/// it says it is tracing. With `capture`, its stdout (the reports) is kept for
/// [`Interrupted::finish`]; otherwise it goes to the terminal. Its stderr is
/// shown when `echo`, and drained otherwise so it never blocks on the pipe.
pub fn record(pid: u32, extra: &[&str], capture: bool, echo: bool) -> Result<Interrupted> {
    let mut child = Command::new(setup::target_dir().join("release/cowscope"))
        .args(["record", "-p", &pid.to_string()])
        .args(extra)
        .stdout(if capture { Stdio::piped() } else { Stdio::inherit() })
        .stderr(Stdio::piped())
        .spawn()
        .context("start cowscope")?;
    let stderr = child.stderr.take().context("cowscope's stderr")?;
    let scope = Interrupted::new(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            if line.starts_with("Tracing PID") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("cowscope did not start tracing PID {pid} (is this root?)"))?;
    Ok(scope)
}
