//! A base backup laid out as a PostgreSQL data directory that recovers on start: the source's tree restored
//! into an empty directory (through the safe restore of `ops/restore`, owned by the OS user PostgreSQL runs as),
//! then `recovery.signal` and the recovery settings in `postgresql.auto.conf` — `restore_command` calling
//! `gumvault wal-fetch`, the target time, the timeline, promote at the end — and no stale `postmaster.pid`.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ops::restore::{self, Entry, RestoreOptions, RestoreProgress, RestoreSummary, Walked};
use crate::repo::reader::BlobReader;

/// Recovery settings gumvault writes; the same keys from an earlier restore are commented out first, so a base
/// backup of a restored cluster does not bring back its old target.
const RECOVERY_KEYS: [&str; 10] = [
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_name",
    "recovery_target_lsn",
    "recovery_target_xid",
    "recovery_target_inclusive",
    "recovery_target_action",
    "recovery_target_timeline",
    "recovery_end_command",
];

/// A larger postgresql.auto.conf is not a PostgreSQL one.
const AUTO_CONF_LIMIT: u64 = 16 << 20;

/// How the restored cluster recovers when it starts.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The shell command PostgreSQL runs for each WAL file it needs (`%f` and `%p` in it).
    pub restore_command: String,
    /// Stop at this time (`recovery_target_time`); without it, replay every archived WAL.
    pub target_time: Option<jiff::Timestamp>,
    /// Follow this timeline (`recovery_target_timeline`); without it, the latest.
    pub timeline: Option<u32>,
    /// Written as a comment above the settings: what was restored.
    pub origin: String,
}

/// The OS user that owns a restored data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsUser {
    /// Its name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

impl OsUser {
    /// Looks up a user by name in the system's user database.
    pub fn lookup(name: &str) -> Result<OsUser> {
        let unknown = || Error::InvalidInput(format!("there is no OS user {name:?} on this machine"));
        let cname = CString::new(name).map_err(|_| unknown())?;
        let mut buf = vec![0 as libc::c_char; 16 << 10];
        // SAFETY: getpwnam_r writes only into `pwd` and `buf`, whose sizes it is given; `found` points into them.
        let (pwd, found) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
            (pwd, found)
        };
        if found.is_null() {
            return Err(unknown());
        }
        // SAFETY: pw_dir is a NUL-terminated string inside `buf`, alive here.
        let home = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
        let home = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(home.to_bytes()));
        Ok(OsUser { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid, home })
    }

    /// Who owns what a restore makes: as root, `name` or else `postgres` (the owner pg_basebackup names for every
    /// file, and PostgreSQL refuses to run as root); otherwise nobody is chosen and files stay the restoring user's.
    pub fn for_restore(name: Option<&str>) -> Result<Option<OsUser>> {
        if !rustix::process::geteuid().is_root() {
            return match name {
                Some(n) => Err(Error::InvalidInput(format!(
                    "only root can give the restored files to {n:?}; run as root, or as that user without --owner-user"
                ))),
                None => Ok(None),
            };
        }
        OsUser::lookup(name.unwrap_or("postgres")).map(Some).map_err(|e| match name {
            Some(_) => e,
            None => Error::InvalidInput(format!(
                "{e}: name the OS user PostgreSQL runs as with --owner-user USER (the data directory must be its)"
            )),
        })
    }
}

/// Makes `dir` the empty directory a restore goes into: it must not exist, or be an empty directory (not a link);
/// it is created mode 0700.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::InvalidInput(format!(
            "{} is a symlink; give the real directory (a data directory is never restored through a link)",
            dir.display()
        ))),
        Ok(m) if !m.is_dir() => Err(Error::InvalidInput(format!("{} exists and is not a directory", dir.display()))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("read the directory", dir, e))?;
            if entries.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "{} is not empty: a data directory is restored only into an empty or new directory",
                    dir.display()
                )));
            }
            set_private(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            set_private(dir)
        }
        Err(e) => Err(Error::io("read", dir, e)),
    }
}

fn set_private(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io("chmod", dir, e))
}

/// Restores a base backup's entries (its source directory's) into `dir`, every path given to `owner` when one
/// is chosen (the directory itself too).
pub fn lay_out(
    reader: &BlobReader<'_>,
    entries: impl IntoIterator<Item = Walked>,
    dir: &Path,
    owner: Option<&OsUser>,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    let owned = entries.into_iter().map(|walked| {
        walked.map(|mut e: Entry| {
            if let Some(o) = owner {
                e.node.uid = o.uid;
                e.node.gid = o.gid;
            }
            e
        })
    });
    let opts = RestoreOptions { target: dir.to_path_buf(), overwrite: false };
    let summary = restore::restore(reader, owned, &opts, progress)?;
    give(dir, owner)?;
    set_private(dir)?;
    Ok(summary)
}

/// Writes what makes the data directory recover when PostgreSQL starts on it.
pub fn configure(dir: &Path, recovery: &Recovery, owner: Option<&OsUser>) -> Result<()> {
    for stale in ["postmaster.pid", "postmaster.opts"] {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("remove", dir.join(stale), e)),
            _ => {}
        }
    }
    for d in ["pg_wal", "pg_wal/archive_status"] {
        ensure_dir(&dir.join(d), owner)?;
    }
    let signal = dir.join("recovery.signal");
    write_private(&signal, b"")?;
    give(&signal, owner)?;
    let conf = dir.join("postgresql.auto.conf");
    let existing = read_auto_conf(&conf)?;
    let text = auto_conf(&existing, recovery);
    let tmp = dir.join("postgresql.auto.conf.gumvault-partial");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, text.as_bytes())?;
    give(&tmp, owner)?;
    std::fs::rename(&tmp, &conf).map_err(|e| Error::io("write", &conf, e))
}

/// A directory PostgreSQL needs, made 0700 when the backup had none (a link there is replaced: it is not ours).
fn ensure_dir(path: &Path, owner: Option<&OsUser>) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?,
        Err(_) => {}
    }
    std::fs::create_dir(path).map_err(|e| Error::io("create directory", path, e))?;
    set_private(path)?;
    give(path, owner)
}

/// The postgresql.auto.conf the backup holds (never through a link), or nothing.
fn read_auto_conf(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io("read (not following links)", path, e)),
    };
    let mut text = String::new();
    file.take(AUTO_CONF_LIMIT).read_to_string(&mut text).map_err(|e| Error::io("read", path, e))?;
    Ok(text)
}

/// The new postgresql.auto.conf: the old one with earlier recovery settings commented out, then ours.
pub fn auto_conf(existing: &str, r: &Recovery) -> String {
    let mut out = String::new();
    for line in existing.lines() {
        let key = line.trim_start().split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or("");
        if RECOVERY_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            out.push_str("# (replaced by gumvault) ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("# Recovery settings written by gumvault: {}\n", r.origin.replace('\n', " ")));
    out.push_str(&format!("restore_command = {}\n", quote(&r.restore_command)));
    if let Some(t) = r.target_time {
        out.push_str(&format!("recovery_target_time = {}\n", quote(&target_time(t))));
    }
    out.push_str("recovery_target_action = 'promote'\n");
    let timeline = r.timeline.map(|t| t.to_string()).unwrap_or_else(|| "latest".into());
    out.push_str(&format!("recovery_target_timeline = {}\n", quote(&timeline)));
    out
}

/// A time as PostgreSQL reads it, in UTC, cut (not rounded) to its microseconds: a commit at or before the time
/// asked for is at or before this one.
pub fn target_time(t: jiff::Timestamp) -> String {
    let micros = t.as_microsecond();
    let t = jiff::Timestamp::from_microsecond(micros).unwrap_or(t);
    t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// A value in single quotes, as postgresql.conf writes strings.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Creates a file mode 0600 (never through a link, never over anything) holding `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| Error::io("write", path, e))
}

/// Gives a path (not following a link) to `owner`, when one is chosen.
fn give(path: &Path, owner: Option<&OsUser>) -> Result<()> {
    let Some(o) = owner else { return Ok(()) };
    std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid)).map_err(|e| Error::io("chown", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(at: Option<jiff::Timestamp>) -> Recovery {
        Recovery {
            restore_command: "'/usr/bin/gumvault' --config '/etc/it'\"'\"'s.toml' wal-fetch %f %p".into(),
            target_time: at,
            timeline: None,
            origin: "snapshot 1a2b3c4d, source db".into(),
        }
    }

    #[test]
    fn earlier_recovery_settings_give_way_to_ours() {
        let old = "# Do not edit this file manually!\nwork_mem = '8MB'\nrestore_command = 'old'\n\
                   recovery_target_time = '2020-01-01 00:00:00+00'\n  Recovery_Target_Action = 'pause'\n";
        let at: jiff::Timestamp = "2026-12-01T11:46:17.003080746Z".parse().unwrap();
        let text = auto_conf(old, &recovery(Some(at)));
        assert!(text.contains("\nwork_mem = '8MB'\n") && !text.contains("gumvault) work_mem"), "{text}");
        assert!(text.contains("# (replaced by gumvault) restore_command = 'old'"), "{text}");
        assert!(text.contains("# (replaced by gumvault)   Recovery_Target_Action"), "{text}");
        assert!(text.contains("recovery_target_time = '2026-12-01 11:46:17.003080+00'\n"), "{text}");
        assert!(
            text.contains(
                "restore_command = '''/usr/bin/gumvault'' --config ''/etc/it''\"''\"''s.toml'' wal-fetch %f %p'\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("recovery_target_action = 'promote'\nrecovery_target_timeline = 'latest'\n"), "{text}");
        let latest = auto_conf("", &Recovery { timeline: Some(2), ..recovery(None) });
        assert!(!latest.contains("recovery_target_time ="), "{latest}");
        assert!(latest.contains("recovery_target_timeline = '2'"), "{latest}");
    }

    #[test]
    fn a_data_directory_goes_only_where_nothing_is() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        prepare_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        prepare_dir(&fresh).unwrap();
        std::fs::write(fresh.join("x"), "x").unwrap();
        assert!(prepare_dir(&fresh).unwrap_err().to_string().contains("not empty"));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &link).unwrap();
        assert!(prepare_dir(&link).unwrap_err().to_string().contains("symlink"));
        assert!(prepare_dir(&fresh.join("x")).unwrap_err().to_string().contains("not a directory"));
    }
}
