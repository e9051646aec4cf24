//! Where passwords come from: `GUMVAULT_PASSWORD`, `GUMVAULT_PASSWORD_FILE`, `GUMVAULT_PASSWORD_COMMAND` (or their
//! flags), else a prompt on a terminal. Passwords never appear in messages or in a child's argv, and the password
//! command inherits none of gumvault's secrets. A new password (`init`, `key add`, `key passwd`) is never empty,
//! whichever source gave it; a password file others can read is named with a warning.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};

use crate::children::ChildEnv;

/// How to obtain a password.
#[derive(Clone, Debug, Default)]
pub(crate) struct PasswordSource {
    pub file: Option<std::path::PathBuf>,
    pub command: Option<String>,
    /// `repository.password` of the config file, used when nothing else is given.
    pub config: Option<crate::config::Secret>,
    /// The environment of the password command (no secrets of the config, no AWS keys).
    pub child_env: ChildEnv,
}

impl PasswordSource {
    /// The password, from the first source that is set.
    pub fn get(&self, confirm: bool) -> anyhow::Result<Vec<u8>> {
        self.fetch(confirm).map(|(password, _)| password)
    }

    /// The password of a new repository (`init`): as [`PasswordSource::get`] with confirmation, and never empty.
    pub fn get_new(&self) -> anyhow::Result<Vec<u8>> {
        let (password, from) = self.fetch(true)?;
        refuse_empty(password, &from)
    }

    /// The password and where it came from (for messages).
    fn fetch(&self, confirm: bool) -> anyhow::Result<(Vec<u8>, String)> {
        if let Some(p) = std::env::var_os("GUMVAULT_PASSWORD") {
            return Ok((p.into_encoded_bytes(), "GUMVAULT_PASSWORD".into()));
        }
        if let Some(file) = &self.file {
            let password = read_password_file(file, "the password file")?;
            return Ok((password, format!("the password file {}", file.display())));
        }
        if let Some(cmd) = &self.command {
            return Ok((run_password_command(cmd, &self.child_env)?, "the password command".into()));
        }
        if let Some(secret) = &self.config {
            if let Some(path) = secret.file_path() {
                warn_if_others_can_read(path);
            }
            let value = secret.resolve().with_context(|| "cannot read repository.password from the config file")?;
            return Ok((value.into_bytes(), format!("repository.password ({})", secret.describe())));
        }
        Ok((prompt("repository password: ", confirm)?, "the prompt".into()))
    }
}

/// Refuses an empty new password, naming where it came from: an empty password protects nothing, and an unset
/// variable or an empty file is far more often a mistake than a choice.
fn refuse_empty(password: Vec<u8>, from: &str) -> anyhow::Result<Vec<u8>> {
    if password.is_empty() {
        bail!("the password from {from} is empty; an empty password is not allowed for a new key");
    }
    Ok(password)
}

/// Reads a password file (less one trailing newline), warning first when group or others may read or write it.
fn read_password_file(file: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    warn_if_others_can_read(file);
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {what} {}", file.display()))?;
    Ok(strip_newline(bytes))
}

/// A password file open to group or others gives the repository to whoever can read it (or, writable, lets them
/// choose the password of a new key): say so, naming the file and the fix. The password is still used.
fn warn_if_others_can_read(file: &Path) {
    let Ok(meta) = std::fs::metadata(file) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        eprintln!(
            "gumvault: warning: the password file {} is open to group or others (mode {mode:04o}): chmod 600 {}",
            file.display(),
            file.display()
        );
    }
}

/// Runs the password command through `sh -c`; its standard output (less one trailing newline) is the password. It
/// gets the environment of every child: no secret of gumvault's (`ChildEnv`).
fn run_password_command(cmd: &str, env: &ChildEnv) -> anyhow::Result<Vec<u8>> {
    let out = env
        .command("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the password command (GUMVAULT_PASSWORD_COMMAND)")?;
    if !out.status.success() {
        bail!("the password command (GUMVAULT_PASSWORD_COMMAND) failed: {}", out.status);
    }
    Ok(strip_newline(out.stdout))
}

fn strip_newline(mut b: Vec<u8>) -> Vec<u8> {
    if b.last() == Some(&b'\n') {
        b.pop();
        if b.last() == Some(&b'\r') {
            b.pop();
        }
    }
    b
}

/// Asks on the terminal; refuses when there is none.
pub(crate) fn prompt(label: &str, confirm: bool) -> anyhow::Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: set GUMVAULT_PASSWORD, GUMVAULT_PASSWORD_FILE or GUMVAULT_PASSWORD_COMMAND (no terminal to ask on)"
        );
    }
    let first = rpassword::prompt_password(label).context("cannot read the password from the terminal")?;
    if confirm {
        let again =
            rpassword::prompt_password("enter it again: ").context("cannot read the password from the terminal")?;
        if again != first {
            bail!("the passwords differ");
        }
    }
    if first.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(first.into_bytes())
}

/// The new password for `key add` and `key passwd`: `GUMVAULT_NEW_PASSWORD`, `--new-password-file`, or a prompt;
/// never empty.
pub(crate) fn new_password(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = std::env::var_os("GUMVAULT_NEW_PASSWORD") {
        return refuse_empty(p.into_encoded_bytes(), "GUMVAULT_NEW_PASSWORD");
    }
    if let Some(file) = file {
        let password = read_password_file(file, "the new password file")?;
        return refuse_empty(password, &format!("the new password file {}", file.display()));
    }
    prompt("new password: ", true)
}
