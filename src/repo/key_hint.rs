//! The key file that last opened a repository in object storage from this machine, kept in the cache directory.
//!
//! Opening has to find the key file the password opens: list `keys/`, fetch a file, then derive the wrapping key
//! (Argon2id, ~0.2 s). Against a distant region the listing and the fetch are two round trips before the
//! derivation can start. With a hint, the derivation runs on the kept copy while the repository is asked for
//! the same file, so the whole opening costs one round trip or the derivation, whichever is longer — for every
//! command after the first on a machine (a backup every few hours, `wal-push` for every WAL segment).
//!
//! The copy is only a head start, never an authority: it is used when the repository still holds exactly those
//! bytes under that name, so a key removed or replaced there (`key passwd` on another machine) cannot open the
//! repository from here. It is the key file as the repository stores it (the master key sealed under the
//! password, like kopia's cached format blob), in a 0700 directory as a 0600 file. It is deleted when this
//! machine changes the password and when an opening with it fails (a key removed elsewhere must not linger
//! here), and replaced when another key file opened.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A key file's id and bytes, as the repository stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHint {
    /// The key file's id (its object name under `keys/`).
    pub name: String,
    /// Its bytes.
    pub file: Vec<u8>,
}

/// Where the hint of the repository at `url` is kept: one file per URL, named by a hash of it (a URL is not a
/// file name).
fn hint_path(cache_dir: &Path, url: &str) -> PathBuf {
    let digest = blake3::hash(url.as_bytes()).to_hex();
    cache_dir.join("key-hints").join(&digest.as_str()[..32])
}

/// Longest hint read: a key file is a few hundred bytes.
const MAX_HINT: u64 = 64 * 1024;

/// The hint kept for `url`, if there is a well-formed one: a regular file (not followed through a link) of ours
/// that only we can read, of at most [`MAX_HINT`] bytes. Anything else is ignored, never an error.
pub fn load(cache_dir: &Path, url: &str) -> Option<KeyHint> {
    let bytes = read_private(&hint_path(cache_dir, url))?;
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let name = std::str::from_utf8(&bytes[..newline]).ok()?;
    let well_formed = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| KeyHint { name: name.to_string(), file: bytes[newline + 1..].to_vec() })
}

fn read_private(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 || meta.len() > MAX_HINT {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_HINT).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Keeps `hint` for `url`: written whole under a temporary name and renamed, so a reader never sees half of one.
/// A hint that cannot be written costs only the next opening's head start, so failures are not errors.
pub fn store(cache_dir: &Path, url: &str, hint: &KeyHint) {
    let path = hint_path(cache_dir, url);
    let Some(dir) = path.parent() else { return };
    if !matches!(super::private::private_dir(dir), Ok(None)) {
        return; // not ours alone: keep no key material there
    }
    let written = tempfile::NamedTempFile::new_in(dir).and_then(|mut tmp| {
        tmp.write_all(hint.name.as_bytes())?;
        tmp.write_all(b"\n")?;
        tmp.write_all(&hint.file)?;
        tmp.persist(&path).map_err(|e| e.error)
    });
    drop(written);
}

/// Deletes the hint for `url` (after this machine changed the password: the old key file must not linger here).
pub fn forget(cache_dir: &Path, url: &str) {
    let _ = std::fs::remove_file(hint_path(cache_dir, url));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_hint_is_kept_privately_per_url_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let hint = KeyHint { name: "8ca12cb8c8f21fa8e7e41f4300bb09b0".into(), file: b"{\"k\":1}\n\x00tail".to_vec() };
        assert_eq!(load(dir.path(), "s3://b/a"), None);
        store(dir.path(), "s3://b/a", &hint);
        assert_eq!(load(dir.path(), "s3://b/a"), Some(hint.clone()));
        assert_eq!(load(dir.path(), "s3://b/other"), None);
        let path = hint_path(dir.path(), "s3://b/a");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        for bad in [&b"no newline"[..], b"\nempty name", b"../etc/passwd\nx", b"zz\nnot hex"] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(load(dir.path(), "s3://b/a"), None, "{bad:?}");
        }
        // Not private, too large, or a link: ignored.
        store(dir.path(), "s3://b/a", &hint);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load(dir.path(), "s3://b/a"), None);
        std::fs::remove_file(&path).unwrap();
        store(dir.path(), "s3://b/a", &KeyHint { file: vec![b'x'; 70_000], ..hint.clone() });
        assert_eq!(load(dir.path(), "s3://b/a"), None);
        std::fs::remove_file(&path).unwrap();
        let real = dir.path().join("elsewhere");
        std::fs::write(&real, b"8ca12cb8c8f21fa8e7e41f4300bb09b0\n{}").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert_eq!(load(dir.path(), "s3://b/a"), None);
        std::fs::remove_file(&path).unwrap();
        store(dir.path(), "s3://b/a", &hint);
        forget(dir.path(), "s3://b/a");
        assert_eq!(load(dir.path(), "s3://b/a"), None);
    }
}
