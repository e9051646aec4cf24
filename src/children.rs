//! What a program gumvault starts inherits, decided in one place. Every child that is not gumvault itself —
//! `backup --command`, pg_dump, psql, pg_restore, redis-cli, the alert command, the password command — is built
//! with [`ChildEnv::command`]: this process's environment without the secrets gumvault holds for itself or for
//! other sources, and the umask gumvault was started with (gumvault tightens its own to 077, see `main.rs`).
//! A child that needs a secret gets it set explicitly by its caller (pg_dump's `PGPASSWORD`, redis-cli's
//! `REDISCLI_AUTH`) or named by the config (`[alerts] command_env`).
//!
//! The daemon's own children are gumvault itself and legitimately need the repository password; they are built
//! in `daemon/child.rs` and only get the umask back ([`restore_umask`]).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefixes of variables no child ever gets, whatever the config says: the repository password, where it comes
/// from (`GUMVAULT_PASSWORD_FILE`, `GUMVAULT_PASSWORD_COMMAND`), and the new password of `key add`/`key passwd`.
pub const NEVER_PASSED: [&str; 2] = ["GUMVAULT_PASSWORD", "GUMVAULT_NEW_PASSWORD"];

/// Cloud credentials gumvault may use for S3 and no child needs unless its config names them. Paths to
/// credential files and profile names (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, …) are not secrets and stay.
const CLOUD_SECRETS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// The environment a child gets: which variables are withheld from it, beyond the fixed ones, and which are
/// passed although they would be withheld. Built from the config where there is one (`Config::child_env`), so
/// every `env:` reference's variable stays with gumvault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildEnv {
    withheld: BTreeSet<String>,
    passed: BTreeSet<String>,
}

impl ChildEnv {
    /// Withholds these variables too (the names the config reads secrets from).
    pub fn withholding<I, S>(mut self, names: I) -> ChildEnv
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.withheld.extend(names.into_iter().map(Into::into));
        self
    }

    /// Passes these variables on although they would be withheld (a child's config names what it needs); the
    /// repository password ([`NEVER_PASSED`]) is withheld all the same.
    pub fn passing<I, S>(mut self, names: I) -> ChildEnv
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.passed.extend(names.into_iter().map(Into::into));
        self
    }

    /// True when a child does not get the variable `name`.
    pub fn withholds(&self, name: &OsStr) -> bool {
        let bytes = name.as_encoded_bytes();
        if NEVER_PASSED.iter().any(|p| bytes.starts_with(p.as_bytes())) {
            return true;
        }
        let Some(name) = name.to_str() else { return false };
        !self.passed.contains(name) && (CLOUD_SECRETS.contains(&name) || self.withheld.contains(name))
    }

    /// A command for `program` with this environment and the umask gumvault was started with. Variables the
    /// caller sets afterwards (`cmd.env`) are the child's whatever this withholds.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if self.withholds(&name) {
                cmd.env_remove(name);
            }
        }
        restore_umask(&mut cmd);
        cmd
    }
}

/// The umask gumvault was started with, or `u32::MAX` when none was remembered (the library outside the binary).
static STARTED_WITH: AtomicU32 = AtomicU32::new(u32::MAX);

/// Remembers the umask the process was started with, so children get it back; `main` calls it once it has
/// replaced the umask with 077.
pub fn remember_umask(mask: libc::mode_t) {
    STARTED_WITH.store(mask, Ordering::Relaxed);
}

/// Gives the child the umask gumvault was started with: gumvault's own 077 is for the repository and catalog it
/// writes, and a child (an alert script writing a log, say) creates files as it would when started by anyone else.
pub fn restore_umask(cmd: &mut Command) {
    let mask = STARTED_WITH.load(Ordering::Relaxed);
    if mask == u32::MAX {
        return;
    }
    // SAFETY: umask is async-signal-safe, allocates nothing and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            libc::umask(mask);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::ChildEnv;

    #[test]
    fn secrets_are_withheld_and_named_ones_passed() {
        let env = ChildEnv::default().withholding(["DATABASE_URL", "SMTP_PASSWORD"]);
        for name in
            ["GUMVAULT_PASSWORD", "GUMVAULT_PASSWORD_FILE", "GUMVAULT_PASSWORD_COMMAND", "GUMVAULT_NEW_PASSWORD"]
        {
            assert!(env.withholds(OsStr::new(name)), "{name}");
        }
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "DATABASE_URL", "SMTP_PASSWORD"]
        {
            assert!(env.withholds(OsStr::new(name)), "{name}");
        }
        for name in ["PATH", "HOME", "AWS_PROFILE", "AWS_REGION", "GUMVAULT_CONFIG", "PGPASSWORD"] {
            assert!(!env.withholds(OsStr::new(name)), "{name}");
        }
        let alert = env.passing(["SMTP_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GUMVAULT_PASSWORD"]);
        assert!(!alert.withholds(OsStr::new("SMTP_PASSWORD")));
        assert!(!alert.withholds(OsStr::new("AWS_SECRET_ACCESS_KEY")));
        assert!(alert.withholds(OsStr::new("GUMVAULT_PASSWORD")), "the repository password is never passed");
        assert!(alert.withholds(OsStr::new("DATABASE_URL")));
    }
}
