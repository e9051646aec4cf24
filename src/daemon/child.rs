//! Tasks run as child `gumvault` processes, so a crash or a leak in one run cannot take the daemon down and the
//! daemon's own memory stays flat. A child gets its own process group (Ctrl-C reaches only the daemon, which
//! lets the task finish) and SIGTERM when the daemon dies.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::clock::{Clock, stopping};
use crate::exit;

/// How to start a child: the program, the config file, and the cache directory when one was given.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    /// The `gumvault` binary.
    pub exe: PathBuf,
    /// The config file the daemon runs.
    pub config: PathBuf,
    /// `--cache-dir`, passed on when the daemon was given one.
    pub cache_dir: Option<PathBuf>,
}

/// The outcome of one child run.
pub struct ChildRun {
    /// Exit 0, 6 (degraded: saved, but not in every region) or 3 (incomplete: saved, but some inputs could not be
    /// read): the task did its work, so it is neither retried nor alerted as failed.
    pub ok: bool,
    /// Exit 3: a backup saved its snapshot without some inputs, which its JSON output names (`unreadable`).
    pub incomplete: bool,
    /// The exit code (-1 when there was none).
    pub code: i32,
    /// Ended by a signal rather than by exiting: with the daemon stopping, the task was interrupted, not failed.
    pub signalled: bool,
    /// Its JSON output.
    pub stdout: serde_json::Value,
    /// What went wrong, from its error lines.
    pub error: Option<String>,
    /// How long it ran.
    pub elapsed: std::time::Duration,
}

impl ChildRun {
    /// Killed by a signal while the daemon is stopping (e.g. `systemctl stop` signals the whole unit): not a
    /// failure to alert on or retry. A task that exits with an error code failed, stopping or not.
    pub fn interrupted(&self) -> bool {
        !self.ok && self.signalled && stopping()
    }
}

impl ChildCommand {
    /// Runs `gumvault --config PATH --quiet ARGS` and collects its JSON output and the tail of its errors.
    pub fn run(&self, clock: &Clock, args: &[String]) -> ChildRun {
        let started = Instant::now();
        let mut cmd = self.command(clock, args);
        let (code, signalled, stdout, stderr) = match cmd.spawn() {
            Ok(child) => collect(child),
            Err(e) => (-1, false, Vec::new(), format!("cannot start gumvault: {e}").into_bytes()),
        };
        let stdout: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or(serde_json::Value::Null);
        let text = String::from_utf8_lossy(&stderr);
        let error_lines: Vec<&str> = text.lines().filter(|l| l.contains("error")).collect();
        let error = if error_lines.is_empty() {
            text.lines().last().map(str::to_string)
        } else {
            Some(error_lines.join(" | "))
        };
        let ok = code == exit::OK || code == exit::DEGRADED || code == exit::INCOMPLETE;
        ChildRun {
            ok,
            incomplete: code == exit::INCOMPLETE,
            code,
            signalled,
            stdout,
            error: if ok { None } else { error.or(Some(format!("exit code {code}"))) },
            elapsed: started.elapsed(),
        }
    }

    fn command(&self, clock: &Clock, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--config").arg(&self.config).arg("--quiet").args(args);
        if let Some(dir) = &self.cache_dir {
            cmd.arg("--cache-dir").arg(dir);
        }
        cmd.env("GUMVAULT_RECORD_RUNS", "0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // The child is gumvault and needs the repository password: only the umask is given back, so the programs
        // it starts get the one the daemon was started with.
        crate::children::restore_umask(&mut cmd);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if let Some(offset) = clock.child_offset() {
            cmd.env("GUMVAULT_TEST_CLOCK_OFFSET", offset);
        }
        cmd
    }
}

/// Waits for the child, reading both pipes (stderr on a thread, so neither can fill up and block it).
fn collect(mut child: std::process::Child) -> (i32, bool, Vec<u8>, Vec<u8>) {
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let errs = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let mut stdout = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    let status = child.wait();
    let stderr = errs.join().unwrap_or_default();
    let signalled = status.as_ref().is_ok_and(|s| std::os::unix::process::ExitStatusExt::signal(s).is_some());
    (status.ok().and_then(|s| s.code()).unwrap_or(-1), signalled, stdout, stderr)
}
