//! Writing objects to a local directory by hand rather than through opendal, for three promises opendal's fs
//! service does not keep: a write that fails (a full disk, a killed process excepted) leaves no temporary file
//! behind; files are private (0600, directories 0700) whatever the umask; and a full disk or a permission problem
//! comes back as an error an operator can act on, with the free space and the path.
//!
//! Also the space reserve: a small file (`reserve`, not an object) that `init` makes and maintenance releases
//! before it writes anything, so `forget` and `prune` can always take their lease and write a new index, even on
//! a disk that backups have filled.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, StorageError, StorageErrorKind};

/// Bytes kept free for maintenance on a local repository.
pub const RESERVE_BYTES: u64 = 16 << 20;
/// The reserve's file name in the repository's root.
pub const RESERVE_NAME: &str = "reserve";

/// Writes `data` to `root/path` durably and whole: into `root/.tmp/` first (0600), fsynced, renamed into place,
/// the directory fsynced. On any failure the temporary file is removed.
pub fn write(root: &Path, region: &str, path: &str, data: &[u8]) -> Result<(), Error> {
    write_via(root, region, path, |tmp| write_temp(tmp, data))
}

/// [`write`] of an object of `len` bytes read from `body`, a piece at a time: the temporary file is removed, and
/// nothing is stored under `path`, unless `body` gives exactly `len` bytes.
pub fn write_streamed(
    root: &Path,
    region: &str,
    path: &str,
    len: u64,
    body: &mut dyn std::io::Read,
) -> Result<(), Error> {
    write_via(root, region, path, |tmp| stream_temp(tmp, len, body))
}

/// Moves the temporary file `fill` writes into place at `root/path`, durably; removes it when anything fails.
fn write_via(
    root: &Path,
    region: &str,
    path: &str,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), Error> {
    let tmp = root.join(".tmp").join(hex::encode(rand::random::<[u8; 12]>()));
    let written = fill(&tmp).and_then(|()| {
        let dest = root.join(path);
        let dir = dest.parent().unwrap_or(root);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(dir)?.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| local_error("write", path, region, root, e))
}

/// Writes `data` to `root/path` durably and whole unless an object exists there, which is then left untouched:
/// into `root/.tmp/` first, fsynced, then moved into place only if the name is free (`renameat2` with
/// `RENAME_NOREPLACE`, or `link` where the file system lacks it), the directory fsynced. Returns false when an
/// object was already there. Two writers racing for one name cannot both win, and neither overwrites.
pub fn write_new(root: &Path, region: &str, path: &str, data: &[u8]) -> Result<bool, Error> {
    let tmp = root.join(".tmp").join(hex::encode(rand::random::<[u8; 12]>()));
    let fail = |e: std::io::Error| local_error("write", path, region, root, e);
    let outcome = write_temp(&tmp, data).and_then(|()| {
        let dest = root.join(path);
        let dir = dest.parent().unwrap_or(root);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let created = move_if_absent(&tmp, &dest)?;
        if created {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(created)
    });
    let _ = std::fs::remove_file(&tmp);
    outcome.map_err(fail)
}

/// Renames `tmp` to `dest` unless `dest` exists; false when it does.
fn move_if_absent(tmp: &Path, dest: &Path) -> std::io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(true),
        Err(rustix::io::Errno::EXIST) => return Ok(false),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e.into()),
    }
    // No RENAME_NOREPLACE here (an older kernel, NFS): a hard link fails just the same when the name is taken.
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn write_temp(tmp: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = tmp.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
    f.write_all(data)?;
    f.sync_all()
}

fn stream_temp(tmp: &Path, len: u64, body: &mut dyn std::io::Read) -> std::io::Result<()> {
    use std::io::Read;
    if let Some(dir) = tmp.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
    // Writes of 1 MiB, not the 8 KiB pieces `io::copy` would make of a reader that is not a file.
    let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
    let copied = std::io::copy(&mut body.take(len.saturating_add(1)), &mut f)?;
    let f = f.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    if copied != len {
        let message = format!("the object to write has {copied} bytes, not {len}");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
    }
    f.sync_all()
}

/// A local file system's failure, in words an operator can act on.
pub fn local_error(op: &'static str, path: &str, region: &str, root: &Path, e: std::io::Error) -> Error {
    let (kind, message) = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => (
            StorageErrorKind::Full,
            format!(
                "the disk is full ({}): {} free on {}; free space there, or remove old snapshots with `gumvault forget … --prune` (forget and prune work on a full disk)",
                e,
                free_space(root).map(human).unwrap_or_else(|| "no space".into()),
                root.display()
            ),
        ),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => (
            StorageErrorKind::PermissionDenied,
            format!("{e} on {}: the repository must be writable by this user", root.join(path).display()),
        ),
        _ => (StorageErrorKind::Other, e.to_string()),
    };
    StorageError::new(op, path, region, kind, message).into()
}

/// Bytes free for this user on the file system of `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} KiB", b / 1024),
    }
}

/// Makes the reserve (when there is room for it); false when it could not be made.
pub fn make_reserve(root: &Path) -> bool {
    let path = root.join(RESERVE_NAME);
    if path.exists() {
        return true;
    }
    let made = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).and_then(|f| {
        // Real blocks, not a hole: the point is that the space is taken.
        let block = vec![0u8; 1 << 20];
        let mut f = f;
        for _ in 0..RESERVE_BYTES >> 20 {
            f.write_all(&block)?;
        }
        f.sync_all()
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    made.is_ok()
}

/// Frees the reserve for this run of maintenance.
pub fn release_reserve(root: &Path) {
    let _ = std::fs::remove_file(root.join(RESERVE_NAME));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `.0` bytes of 7s that then fails (`.1`) or ends.
    struct FailsAfter(usize, bool);

    impl std::io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 && self.1 {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "refused by the check"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_streamed_write_stores_only_a_whole_body() {
        let root = tempfile::tempdir().unwrap();
        let leftovers = || std::fs::read_dir(root.path().join(".tmp")).map(|d| d.count()).unwrap_or(0);
        let failing = write_streamed(root.path(), "r", "data/ab/failed", 3 << 20, &mut FailsAfter(2 << 20, true));
        assert!(failing.unwrap_err().to_string().contains("refused by the check"));
        let short = write_streamed(root.path(), "r", "data/ab/short", 100, &mut &[1u8; 60][..]);
        assert!(short.unwrap_err().to_string().contains("60 bytes, not 100"));
        let long = write_streamed(root.path(), "r", "data/ab/long", 100, &mut &[1u8; 160][..]);
        assert!(long.is_err());
        for name in ["failed", "short", "long"] {
            assert!(!root.path().join("data/ab").join(name).exists(), "{name} must not be stored");
        }
        assert_eq!(leftovers(), 0, "no temporary file is left behind");

        write_streamed(root.path(), "r", "data/ab/whole", 3 << 20, &mut FailsAfter(3 << 20, false)).unwrap();
        let stored = root.path().join("data/ab/whole");
        assert_eq!(std::fs::read(&stored).unwrap(), vec![7u8; 3 << 20]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
