//! A PostgreSQL data directory as the WAL commands see it: which one (`--pgdata`, the working directory
//! PostgreSQL runs `archive_command` and `restore_command` in, `$PGDATA`), its system identifier, the files it
//! asks to archive (checked to belong to it), and the other files waiting in `archive_status`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::wal::pg::{control_system_id, parse_history, segment_header};
use crate::format::wal::{WalFile, WalFileKind, valid_segment_size};

/// The data directory: `explicit` (`--pgdata`), else the working directory when it holds `global/pg_control`
/// (PostgreSQL runs its archive and restore commands there), else `$PGDATA`.
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    if cwd.join("global/pg_control").is_file() {
        return Ok(cwd);
    }
    match std::env::var_os("PGDATA").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => Err(Error::InvalidInput(format!(
            "no PostgreSQL data directory: {} has no global/pg_control; pass --pgdata DIR or set PGDATA",
            cwd.display()
        ))),
    }
}

/// The database system identifier of the cluster in `data_dir` (from `global/pg_control`).
pub fn system_id(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join("global/pg_control");
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    control_system_id(&bytes).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
}

/// Reads a file PostgreSQL asks to archive and checks that it is what its name says and belongs to cluster
/// `system_id`: a segment (or partial segment) must start with a long page header carrying that system
/// identifier, a valid segment size equal to the file's length (a partial one may be shorter) and the address
/// its name implies; a timeline history file must parse.
pub fn read_wal_file(path: &Path, system_id: u64) -> Result<(WalFile, Vec<u8>)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let file = WalFile::parse(name).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: not a WAL segment, .partial, .backup or .history file name; archive_command must pass %p",
            path.display()
        ))
    })?;
    let content = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    check_content(path, &file, &content, system_id)?;
    Ok((file, content))
}

fn check_content(path: &Path, file: &WalFile, content: &[u8], system_id: u64) -> Result<()> {
    let refuse = |why: String| Err(Error::InvalidInput(format!("{}: {why}; refusing to archive it", path.display())));
    match file.kind {
        WalFileKind::Segment | WalFileKind::Partial => {
            let h = segment_header(content).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            let len = content.len() as u64;
            if h.system_id != system_id {
                return refuse(format!(
                    "it belongs to database system {}, the data directory's pg_control says {system_id}",
                    h.system_id
                ));
            }
            if !valid_segment_size(h.seg_size.into()) {
                return refuse(format!("its header gives an invalid segment size {}", h.seg_size));
            }
            let complete = file.kind == WalFileKind::Segment;
            if (complete && len != u64::from(h.seg_size)) || len > u64::from(h.seg_size) {
                return refuse(format!("it has {len} bytes, its header says segments have {}", h.seg_size));
            }
            let expected = file.segno(h.seg_size) * u64::from(h.seg_size);
            if h.page_addr != expected {
                return refuse(format!("its first page is at {:X}, its name says {expected:X}", h.page_addr));
            }
            Ok(())
        }
        WalFileKind::History => {
            let text = std::str::from_utf8(content)
                .map_err(|_| Error::InvalidInput(format!("{}: not text", path.display())))?;
            parse_history(text).map(drop).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
        }
        WalFileKind::Backup => match std::str::from_utf8(content) {
            Ok(text) if text.contains("START WAL LOCATION") => Ok(()),
            _ => refuse("not a backup history file (no START WAL LOCATION)".into()),
        },
    }
}

/// The files waiting to be archived beside `file` (`archive_status/*.ready` in its directory), without it:
/// timeline history files first, then in WAL order, as PostgreSQL's archiver takes them.
pub fn ready_files(file: &Path) -> Vec<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let Ok(rd) = std::fs::read_dir(dir.join("archive_status")) else { return Vec::new() };
    let mut names: Vec<WalFile> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".ready").and_then(WalFile::parse))
        .filter(|f| Some(f.name.as_str()) != file.file_name().and_then(|n| n.to_str()))
        .collect();
    names.sort_by_key(|f| (f.kind != WalFileKind::History, f.position(), f.tli, f.name.clone()));
    names.into_iter().map(|f| dir.join(f.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(system_id: u64, seg_size: u32, file: &WalFile) -> Vec<u8> {
        let mut b = vec![0u8; seg_size as usize];
        b[2] = 2;
        b[4] = file.tli as u8;
        b[8..16].copy_from_slice(&(file.segno(seg_size) * u64::from(seg_size)).to_le_bytes());
        b[24..32].copy_from_slice(&system_id.to_le_bytes());
        b[32..36].copy_from_slice(&seg_size.to_le_bytes());
        b
    }

    #[test]
    fn files_are_checked_against_their_cluster_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("pg_wal");
        std::fs::create_dir_all(wal.join("archive_status")).unwrap();
        let f = WalFile::segment(1, 0, 3);
        std::fs::write(wal.join(&f.name), segment(77, 1 << 20, &f)).unwrap();
        assert_eq!(read_wal_file(&wal.join(&f.name), 77).unwrap().0, f);
        let err = read_wal_file(&wal.join(&f.name), 78).unwrap_err().to_string();
        assert!(err.contains("belongs to database system 77"), "{err}");
        std::fs::write(wal.join("000000010000000000000004"), segment(77, 1 << 20, &f)).unwrap();
        let err = read_wal_file(&wal.join("000000010000000000000004"), 77).unwrap_err().to_string();
        assert!(err.contains("its name says"), "{err}");
        std::fs::write(wal.join("000000010000000000000005"), &segment(77, 1 << 20, &f)[..4096]).unwrap();
        assert!(read_wal_file(&wal.join("000000010000000000000005"), 77).is_err());
        std::fs::write(wal.join("00000002.history"), "1\t0/3000158\tno recovery target specified\n").unwrap();
        assert!(read_wal_file(&wal.join("00000002.history"), 77).is_ok());
        std::fs::write(wal.join("00000003.history"), "garbage").unwrap();
        assert!(read_wal_file(&wal.join("00000003.history"), 77).is_err());
        assert!(read_wal_file(&wal.join("RECOVERYXLOG"), 77).is_err());
        for n in ["000000010000000000000004", "000000010000000000000003", "00000002.history", "junk"] {
            std::fs::write(wal.join("archive_status").join(format!("{n}.ready")), "").unwrap();
        }
        std::fs::write(wal.join("archive_status/000000010000000000000001.done"), "").unwrap();
        let ready = ready_files(&wal.join("000000010000000000000003"));
        let names: Vec<_> = ready.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["00000002.history", "000000010000000000000004"]);
    }
}
