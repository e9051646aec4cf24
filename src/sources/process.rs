//! Running a source's program (pg_dump, redis-cli): its standard output streams into the backup, its standard
//! error is kept (the last few KiB) so a failure can say why in the program's own words.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// How much of a program's standard error is kept for messages.
const STDERR_TAIL: usize = 8 << 10;

/// A started program whose stdout is to be read and whose stderr is being collected.
pub struct Running {
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
    program: String,
    /// Killed by [`Running::abort`]: its own failure says nothing, the caller's error does.
    aborted: bool,
}

/// Starts `cmd` with stdin closed, stdout piped and stderr collected.
pub fn spawn(mut cmd: Command, program: &str) -> Result<(Running, std::process::ChildStdout)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut running = start(cmd, program)?;
    let stdout = running.child.stdout.take().expect("stdout was piped");
    Ok((running, stdout))
}

/// Starts `cmd` (its stdin and stdout set by the caller) with stderr collected on a thread.
fn start(mut cmd: Command, program: &str) -> Result<Running> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::SourceFailed(format!("cannot start {program}: {e} (is it installed and on PATH?)")))?;
    let stderr = child.stderr.take().expect("stderr was piped");
    let handle = std::thread::spawn(move || collect_tail(stderr));
    Ok(Running { child, stderr: Some(handle), program: program.to_string(), aborted: false })
}

impl Running {
    /// Waits for the program. `consumed` is how feeding or reading it went. When that failed because the program
    /// closed the pipe, the program's own failure is the better message; otherwise the program is killed (it may
    /// be blocked on a pipe nobody serves) and `consumed`'s error is returned.
    pub fn finish<T>(mut self, consumed: Result<T>) -> Result<T> {
        self.settle(consumed)
    }

    /// Like [`Running::finish`]; on success also returns what the program wrote to standard error (its last few
    /// KiB), for programs that report results there.
    pub fn finish_with_stderr<T>(mut self, consumed: Result<T>) -> Result<(T, String)> {
        let value = self.settle(consumed)?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        Ok((value, String::from_utf8_lossy(&stderr).into_owned()))
    }

    fn settle<T>(&mut self, consumed: Result<T>) -> Result<T> {
        if self.aborted {
            return consumed.and_then(|_| Err(Error::SourceFailed(format!("{} was stopped", self.program))));
        }
        if let Err(e) = &consumed {
            let exited = if is_broken_pipe(e) { self.wait_a_little() } else { self.child.try_wait().ok().flatten() };
            match exited {
                Some(status) if !status.success() => return Err(self.failure(status)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return consumed;
                }
            }
        }
        let status =
            self.child.wait().map_err(|e| Error::SourceFailed(format!("waiting for {} failed: {e}", self.program)))?;
        if status.success() { consumed } else { Err(self.failure(status)) }
    }

    /// Kills the program unless it has ended by itself. A loader fed a dump that could not be read to its end
    /// must die before its input is closed: psql given a script cut short commits what it got.
    pub fn abort(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.aborted = true;
        }
    }

    fn wait_a_little(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..100 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// The program's failure in its own words.
    fn failure(&mut self, status: std::process::ExitStatus) -> Error {
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let text = String::from_utf8_lossy(&stderr);
        let text = text.trim();
        Error::SourceFailed(if text.is_empty() {
            format!("{} failed ({status})", self.program)
        } else {
            format!("{} failed ({status}): {text}", self.program)
        })
    }
}

/// True when `e` is a write to a program that had closed its input (it ended, and says why itself).
pub fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Starts `cmd` (stdin and stdout piped by the caller) and hands over both pipes.
pub fn spawn_with_stdin(
    cmd: Command,
    program: &str,
) -> Result<(Running, std::process::ChildStdin, std::process::ChildStdout)> {
    let mut running = start(cmd, program)?;
    let stdin = running.child.stdin.take().expect("stdin was piped");
    let stdout = running.child.stdout.take().expect("stdout was piped");
    Ok((running, stdin, stdout))
}

/// Starts `cmd` to be fed on its standard input; its standard output is discarded, its standard error collected.
pub fn spawn_writer(mut cmd: Command, program: &str) -> Result<(Running, std::process::ChildStdin)> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut running = start(cmd, program)?;
    let stdin = running.child.stdin.take().expect("stdin was piped");
    Ok((running, stdin))
}

/// Runs `cmd` to completion and returns its standard output; a failure carries its standard error.
pub fn output(cmd: Command, program: &str) -> Result<Vec<u8>> {
    let (running, mut stdout) = spawn(cmd, program)?;
    let mut out = Vec::new();
    let read = stdout.read_to_end(&mut out).map_err(|e| Error::io("read the output of", program, e));
    drop(stdout);
    running.finish(read).map(|_| out)
}

fn collect_tail(mut r: impl Read) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
    tail
}
