//! Where passwords come from: `GUMVAULT_PASSWORD`, `GUMVAULT_PASSWORD_FILE`, `GUMVAULT_PASSWORD_COMMAND` (or their
//! flags), else a prompt on a terminal. Passwords never appear in messages or in a child's argv.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// How to obtain a password.
#[derive(Clone, Debug, Default)]
pub(crate) struct PasswordSource {
    pub file: Option<std::path::PathBuf>,
    pub command: Option<String>,
    /// `repository.password` of the config file, used when nothing else is given.
    pub config: Option<crate::config::Secret>,
}

impl PasswordSource {
    /// The password, from the first source that is set.
    pub fn get(&self, confirm: bool) -> anyhow::Result<Vec<u8>> {
        if let Some(p) = std::env::var_os("GUMVAULT_PASSWORD") {
            return Ok(p.into_encoded_bytes());
        }
        if let Some(file) = &self.file {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read the password file {}", file.display()))?;
            return Ok(strip_newline(bytes));
        }
        if let Some(cmd) = &self.command {
            return run_password_command(cmd);
        }
        if let Some(secret) = &self.config {
            let value = secret.resolve().with_context(|| "cannot read repository.password from the config file")?;
            return Ok(value.into_bytes());
        }
        prompt("repository password: ", confirm)
    }
}

/// Runs the password command through `sh -c`; its standard output (less one trailing newline) is the password.
fn run_password_command(cmd: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("sh")
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

/// The new password for `key add` and `key passwd`: `GUMVAULT_NEW_PASSWORD`, `--new-password-file`, or a prompt.
pub(crate) fn new_password(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = std::env::var_os("GUMVAULT_NEW_PASSWORD") {
        return Ok(p.into_encoded_bytes());
    }
    if let Some(file) = file {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read the new password file {}", file.display()))?;
        return Ok(strip_newline(bytes));
    }
    prompt("new password: ", true)
}
