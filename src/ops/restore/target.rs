//! The target of a restore, reached only through directory descriptors, one path component at a time. Nothing
//! here follows a symlink it did not create, with one documented exception: a link where the snapshot has a
//! directory is followed when it is owned by root or by the user restoring (the kernel's `protected_symlinks`
//! rule), so a restore into `/` of a merged-/usr system still finds `/lib -> usr/lib`. A link owned by anyone else
//! is an error for that path (or, with `--overwrite`, replaced by a real directory). Files are created
//! `O_EXCL|O_NOFOLLOW` with mode 0600, directories 0700; their real modes are set on the open descriptor only
//! once their content is complete.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::format::tree::Node;

/// Directory descriptors kept open at once; more are opened again when needed.
const DIR_CACHE: usize = 256;

/// A failure at one path of the target, in words for the operator.
pub type PathResult<T> = std::result::Result<T, String>;

/// How a directory of the target was reached, so it can be reached again the same way.
#[derive(Clone, Debug)]
pub struct DirRecord {
    /// The directory it is in (`None`: the target itself).
    pub parent: Option<usize>,
    /// Its name in the parent.
    pub name: OsString,
    /// It is a symlink owned by root or by us that was followed.
    pub follow: bool,
    /// Device and inode it had when it was first reached: a directory swapped since is refused.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
}

/// What is already at a name in the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Nothing,
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// Its modification time, nanoseconds since the epoch.
        mtime_ns: i64,
        /// More than one name refers to it (a hard link, perhaps planted: never kept as "identical", since its
        /// metadata would then be set on a file elsewhere).
        linked: bool,
    },
    /// A directory.
    Dir,
    /// A symlink, FIFO, socket or device.
    Other,
}

/// The open target directory and every directory reached below it.
pub struct Target {
    root: Arc<OwnedFd>,
    path: PathBuf,
    euid: u32,
    dirs: Mutex<Vec<DirRecord>>,
    cache: Mutex<HashMap<usize, Arc<OwnedFd>>>,
}

/// `openat` flags of a directory that is not to be followed if it is a link.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn describe(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

impl Target {
    /// Opens (creating it and its parents when missing) the directory `path`. The path is the operator's own
    /// choice and is followed as given, except that its last component, when a symlink, must be owned by root or
    /// by the user restoring.
    pub fn open(path: &Path) -> crate::Result<Target> {
        std::fs::create_dir_all(path).map_err(|e| crate::Error::io("create directory", path, e))?;
        let euid = rustix::process::geteuid().as_raw();
        let meta = std::fs::symlink_metadata(path).map_err(|e| crate::Error::io("read", path, e))?;
        if meta.file_type().is_symlink() && !trusted_owner(std::os::unix::fs::MetadataExt::uid(&meta), euid) {
            return Err(crate::Error::InvalidInput(format!(
                "the target {} is a symlink owned by another user; give the real directory",
                path.display()
            )));
        }
        let root = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| crate::Error::io("open the target directory", path, e.into()))?;
        let root = Arc::new(root);
        Ok(Target { root, path: path.to_path_buf(), euid, dirs: Mutex::default(), cache: Mutex::default() })
    }

    /// True when restoring as root (owners are restored; otherwise files stay the restoring user's).
    pub fn as_root(&self) -> bool {
        self.euid == 0
    }

    /// The target's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor of directory `dir` (`None`: the target), opened again if it is not cached.
    pub fn dir_fd(&self, dir: Option<usize>) -> PathResult<Arc<OwnedFd>> {
        let Some(i) = dir else { return Ok(self.root.clone()) };
        if let Some(fd) = self.cache.lock().expect("dir cache lock").get(&i) {
            return Ok(fd.clone());
        }
        let rec = self.dirs.lock().expect("dirs lock")[i].clone();
        let parent = self.dir_fd(rec.parent)?;
        let flags = if rec.follow { dir_flags() - OFlags::NOFOLLOW } else { dir_flags() };
        let fd = rustix::fs::openat(parent.as_fd(), &rec.name, flags, Mode::empty()).map_err(describe)?;
        let st = rustix::fs::fstat(&fd).map_err(describe)?;
        if st.st_dev != rec.dev || st.st_ino != rec.ino {
            return Err("the directory was replaced during the restore".into());
        }
        let fd = Arc::new(fd);
        let mut cache = self.cache.lock().expect("dir cache lock");
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(i, fd.clone());
        Ok(fd)
    }

    /// What is at `name` in directory `dir`, without following a link.
    #[allow(clippy::unnecessary_cast)] // stat's field types differ between platforms
    pub fn existing(&self, dir: Option<usize>, name: &OsStr) -> PathResult<Existing> {
        let fd = self.dir_fd(dir)?;
        match rustix::fs::statat(fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Existing::File {
                    size: st.st_size as u64,
                    mtime_ns: (st.st_mtime as i64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(st.st_mtime_nsec as i64),
                    linked: st.st_nlink > 1,
                },
                FileType::Directory => Existing::Dir,
                _ => Existing::Other,
            }),
            Err(Errno::NOENT) => Ok(Existing::Nothing),
            Err(e) => Err(describe(e)),
        }
    }

    /// Reaches (creating it 0700 when missing) directory `name` in `parent`; returns its index for later use.
    /// A symlink there is followed only when root or we own it; otherwise it is an error, or with `overwrite`
    /// it is removed and a directory made in its place. A file there is always an error.
    pub fn make_dir(&self, parent: Option<usize>, name: &OsStr, overwrite: bool) -> PathResult<usize> {
        let pfd = self.dir_fd(parent)?;
        let follow = match rustix::fs::mkdirat(pfd.as_fd(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) => false,
            Err(Errno::EXIST) => self.existing_dir_is_usable(&pfd, name, overwrite)?,
            Err(e) => return Err(describe(e)),
        };
        let link_before =
            follow.then(|| rustix::fs::statat(pfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW).ok()).flatten();
        let flags = if follow { dir_flags() - OFlags::NOFOLLOW } else { dir_flags() };
        let fd = rustix::fs::openat(pfd.as_fd(), name, flags, Mode::empty()).map_err(describe)?;
        let st = rustix::fs::fstat(&fd).map_err(describe)?;
        if let Some(before) = link_before {
            // The link followed must still be the trusted one checked a moment ago, not one swapped in since.
            let now = rustix::fs::statat(pfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW).map_err(describe)?;
            if now.st_ino != before.st_ino || !trusted_owner(now.st_uid, self.euid) {
                return Err("the symlink there was replaced during the restore".into());
            }
        }
        let mut dirs = self.dirs.lock().expect("dirs lock");
        dirs.push(DirRecord { parent, name: name.to_os_string(), follow, dev: st.st_dev, ino: st.st_ino });
        let i = dirs.len() - 1;
        drop(dirs);
        self.cache.lock().expect("dir cache lock").insert(i, Arc::new(fd));
        Ok(i)
    }

    /// Something exists where a directory goes: a directory is used as it is; a trusted link is followed (true);
    /// an untrusted link is replaced with `overwrite`; anything else is an error.
    fn existing_dir_is_usable(&self, pfd: &OwnedFd, name: &OsStr, overwrite: bool) -> PathResult<bool> {
        let st = rustix::fs::statat(pfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW).map_err(describe)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Ok(false),
            FileType::Symlink if trusted_owner(st.st_uid, self.euid) => {
                match rustix::fs::statat(pfd.as_fd(), name, AtFlags::empty()) {
                    Ok(t) if FileType::from_raw_mode(t.st_mode) == FileType::Directory => Ok(true),
                    _ => Err("a symlink that does not lead to a directory is where a directory belongs".into()),
                }
            }
            FileType::Symlink if overwrite => {
                rustix::fs::unlinkat(pfd.as_fd(), name, AtFlags::empty()).map_err(describe)?;
                rustix::fs::mkdirat(pfd.as_fd(), name, Mode::from_raw_mode(0o700)).map_err(describe)?;
                Ok(false)
            }
            FileType::Symlink => Err(
                "a symlink owned by another user is where a directory belongs; it is not followed (--overwrite replaces it)"
                    .into(),
            ),
            _ => Err("a file is where a directory belongs".into()),
        }
    }

    /// Creates an empty file 0600 at `name` in `dir` (never through a link, never over anything); returns it and
    /// its inode.
    pub fn create_file(&self, dir: Option<usize>, name: &OsStr) -> PathResult<(std::fs::File, u64)> {
        let fd = self.dir_fd(dir)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = rustix::fs::openat(fd.as_fd(), name, flags, Mode::from_raw_mode(0o600)).map_err(describe)?;
        let ino = rustix::fs::fstat(&file).map_err(describe)?.st_ino;
        Ok((std::fs::File::from(file), ino))
    }

    /// Opens for writing the file this restore created at `name` in `dir` (inode `ino`); anything else there is
    /// an error.
    pub fn reopen_file(&self, dir: Option<usize>, name: &OsStr, ino: u64) -> PathResult<std::fs::File> {
        let fd = self.dir_fd(dir)?;
        // NONBLOCK: a FIFO swapped in fails at once instead of blocking the restore.
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = rustix::fs::openat(fd.as_fd(), name, flags, Mode::empty()).map_err(describe)?;
        if rustix::fs::fstat(&file).map_err(describe)?.st_ino != ino {
            return Err("the file was replaced during the restore".into());
        }
        Ok(std::fs::File::from(file))
    }

    /// Opens an existing regular file with one name for reading (never through a link, never blocking on a FIFO
    /// swapped in), to compare it with the snapshot.
    pub fn read_file(&self, dir: Option<usize>, name: &OsStr) -> PathResult<std::fs::File> {
        let fd = self.dir_fd(dir)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = rustix::fs::openat(fd.as_fd(), name, flags, Mode::empty()).map_err(describe)?;
        let st = rustix::fs::fstat(&file).map_err(describe)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_nlink > 1 {
            return Err("it is not a regular file with one name".into());
        }
        Ok(std::fs::File::from(file))
    }

    /// Removes a name that is not a directory (a link is removed, not followed); a missing name is fine.
    pub fn remove(&self, dir: Option<usize>, name: &OsStr) -> PathResult<()> {
        let fd = self.dir_fd(dir)?;
        match rustix::fs::unlinkat(fd.as_fd(), name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(describe(e)),
        }
    }

    /// Moves `from` to `to` in `dir`; with `replace` false an existing `to` is an error.
    pub fn rename(&self, dir: Option<usize>, from: &OsStr, to: &OsStr, replace: bool) -> PathResult<()> {
        let fd = self.dir_fd(dir)?;
        let flags = if replace { rustix::fs::RenameFlags::empty() } else { rustix::fs::RenameFlags::NOREPLACE };
        rustix::fs::renameat_with(fd.as_fd(), from, fd.as_fd(), to, flags).map_err(|e| match e {
            Errno::EXIST => "something appeared at the path during the restore; not replaced".to_string(),
            e => describe(e),
        })
    }

    /// Creates a symlink `name` → `target` in `dir`.
    pub fn symlink(&self, dir: Option<usize>, name: &OsStr, target: &[u8]) -> PathResult<()> {
        let fd = self.dir_fd(dir)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), fd.as_fd(), name).map_err(describe)
    }

    /// The target of the symlink `name` in `dir`, if it is one.
    pub fn link_target(&self, dir: Option<usize>, name: &OsStr) -> Option<Vec<u8>> {
        let fd = self.dir_fd(dir).ok()?;
        rustix::fs::readlinkat(fd.as_fd(), name, Vec::new()).ok().map(|c| c.into_bytes())
    }

    /// Creates a FIFO `name` in `dir`, mode 0600, and opens it (without blocking, never through a link) so its
    /// metadata can be set on the descriptor.
    pub fn fifo(&self, dir: Option<usize>, name: &OsStr) -> PathResult<OwnedFd> {
        let fd = self.dir_fd(dir)?;
        rustix::fs::mkfifoat(fd.as_fd(), name, Mode::from_raw_mode(0o600)).map_err(describe)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(fd.as_fd(), name, flags, Mode::empty()).map_err(describe)
    }

    /// Owner (as root), mode and times of an open file or directory.
    pub fn apply_metadata(&self, fd: impl AsFd, node: &Node) -> PathResult<()> {
        if self.as_root() {
            let (uid, gid) = (rustix::fs::Uid::from_raw(node.uid), rustix::fs::Gid::from_raw(node.gid));
            rustix::fs::fchown(fd.as_fd(), Some(uid), Some(gid)).map_err(describe)?;
        }
        rustix::fs::fchmod(fd.as_fd(), Mode::from_raw_mode(node.mode & 0o7777)).map_err(describe)?;
        rustix::fs::futimens(fd.as_fd(), &times(node)).map_err(describe)
    }

    /// Owner (as root) and times of the symlink `name` in `dir`, not following it (a link has no mode).
    pub fn apply_link_metadata(&self, dir: Option<usize>, name: &OsStr, node: &Node) -> PathResult<()> {
        let fd = self.dir_fd(dir)?;
        if self.as_root() {
            let (uid, gid) = (rustix::fs::Uid::from_raw(node.uid), rustix::fs::Gid::from_raw(node.gid));
            rustix::fs::chownat(fd.as_fd(), name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(describe)?;
        }
        rustix::fs::utimensat(fd.as_fd(), name, &times(node), AtFlags::SYMLINK_NOFOLLOW).map_err(describe)
    }
}

/// A link owned by root or by the user restoring may be followed.
fn trusted_owner(uid: u32, euid: u32) -> bool {
    uid == 0 || uid == euid
}

fn times(node: &Node) -> rustix::fs::Timestamps {
    let ts = rustix::fs::Timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps { last_access: ts, last_modification: ts }
}

/// The temporary name a file is written under until its content is complete: `NAME.gumvault-partial`, or for a
/// name too long for that a fixed-length name derived from it. Deterministic, so a second restore finds (and
/// removes) what an interrupted one left.
pub fn partial_name(name: &OsStr) -> OsString {
    const SUFFIX: &str = ".gumvault-partial";
    if name.len() + SUFFIX.len() <= 255 {
        let mut n = name.to_os_string();
        n.push(SUFFIX);
        return n;
    }
    let h = blake3::hash(name.as_bytes());
    OsString::from(format!(".gumvault-partial-{}", &h.to_hex()[..32]))
}
