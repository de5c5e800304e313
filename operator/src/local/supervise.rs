//! Supervision of the local cluster's broker processes: they die with the launcher, and a
//! broker that keeps failing is restarted with a growing delay and the reason it gave.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

/// A broker that ran at least this long before exiting was healthy: it is restarted at
/// once (a crash or a `kill -9`), and the delay for later failures starts again.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// The first delay after a failure of a broker that had not run for [`HEALTHY_RUN`].
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between restarts of a broker that keeps failing.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// How long to wait before restarting a broker, from how its recent runs ended.
///
/// A healthy broker that crashes comes back at once, so its partitions are served again
/// without delay; one that cannot start (its port taken, its directory unwritable, a bad
/// setting) is retried after 0.5 s, 1 s, 2 s, ... up to 30 s, not in a tight loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartBackoff {
    quick_failures: u32,
}

impl RestartBackoff {
    /// Records an exit after `ran_for` and returns the delay before the next start.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY_RUN {
            self.quick_failures = 0;
            return Duration::ZERO;
        }
        let doublings = self.quick_failures.min(16);
        self.quick_failures = self.quick_failures.saturating_add(1);
        FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
    }
}

/// Starts a broker whose stderr is appended to `log`, and which the kernel kills when
/// this process dies, however it dies: a `kill -9` of the launcher leaves no broker
/// holding its port or its data directory.
pub fn spawn_broker(bin: &Path, args: &[String], log: &Path) -> Result<Child> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let launcher = std::process::id() as libc::pid_t;
    let mut command = Command::new(bin);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher may have died between fork and prctl.
            if libc::getppid() != launcher {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Sends SIGTERM to `child` (a controlled shutdown), if it is still running.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid this process spawned and has not yet reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// Marks the line a broker prints when it cannot start (see the broker's `main`).
pub const FATAL_PREFIX: &str = "tributary-broker: fatal: ";

/// Why a broker exited, as its log tells: its fatal error if it printed one, else the
/// last line it wrote.
pub fn exit_reason(log: &Path) -> Option<String> {
    const TAIL: u64 = 16 * 1024;
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(FATAL_PREFIX))
        .or_else(|| lines.last().copied())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_broker_restarts_at_once() {
        let mut backoff = RestartBackoff::default();
        assert_eq!(backoff.after_exit(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(backoff.after_exit(HEALTHY_RUN), Duration::ZERO);
    }

    #[test]
    fn quick_failures_back_off_exponentially_up_to_a_cap() {
        let mut backoff = RestartBackoff::default();
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.after_exit(Duration::from_millis(20)).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        // Many more failures never overflow.
        for _ in 0..100 {
            assert_eq!(backoff.after_exit(Duration::ZERO), MAX_DELAY);
        }
        // A healthy run resets the sequence.
        assert_eq!(backoff.after_exit(Duration::from_secs(11)), Duration::ZERO);
        assert_eq!(backoff.after_exit(Duration::ZERO), FIRST_DELAY);
    }

    #[test]
    fn the_reason_is_the_fatal_line_or_the_last_line() {
        let dir = std::env::temp_dir().join(format!("tributary-reason-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("broker.log");
        std::fs::write(
            &log,
            format!("INFO starting\n{FATAL_PREFIX}binding 127.0.0.1:9093: Address in use\n\n"),
        )
        .unwrap();
        assert_eq!(
            exit_reason(&log).as_deref(),
            Some("binding 127.0.0.1:9093: Address in use")
        );
        std::fs::write(&log, "INFO starting\nWARN something odd\n").unwrap();
        assert_eq!(exit_reason(&log).as_deref(), Some("WARN something odd"));
        assert_eq!(exit_reason(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
