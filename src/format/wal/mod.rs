//! The continuous WAL archive's bytes. This file: PostgreSQL's WAL file names and their positions (timeline, log,
//! segment), and log sequence numbers. [`object`] seals an archived file's name and content; [`pg`] parses what
//! PostgreSQL writes (a segment's long page header, pg_control's system identifier, timeline history files).
//! No I/O.

pub mod object;
pub mod pg;

use std::fmt;

/// What kind of file PostgreSQL archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WalFileKind {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`: a complete WAL segment.
    Segment,
    /// `TTTTTTTTLLLLLLLLSSSSSSSS.partial`: the last, incomplete segment of a timeline that a promotion ended.
    Partial,
    /// `TTTTTTTTLLLLLLLLSSSSSSSS.OOOOOOOO.backup`: the backup history file a base backup leaves.
    Backup,
    /// `TTTTTTTT.history`: a timeline history file (which timeline branched off where).
    History,
}

/// A file name PostgreSQL archives, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalFile {
    /// The timeline (for a history file, the timeline it describes).
    pub tli: u32,
    /// The high 32 bits of the segment number ("log"); 0 for a history file.
    pub log: u32,
    /// The segment within the log; 0 for a history file.
    pub seg: u32,
    /// What kind of file.
    pub kind: WalFileKind,
    /// The name as PostgreSQL spells it.
    pub name: String,
}

/// The longest file name the archive stores (a backup history file's name has 40 characters).
pub const MAX_NAME_LEN: usize = 48;

fn hex8(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

impl WalFile {
    /// Parses a WAL segment, partial segment, backup history or timeline history file name (upper-case hex, as
    /// PostgreSQL writes them); `None` for anything else.
    pub fn parse(name: &str) -> Option<WalFile> {
        let file = |tli, log, seg, kind| Some(WalFile { tli, log, seg, kind, name: name.to_string() });
        if let Some(t) = name.strip_suffix(".history") {
            return file(hex8(t)?, 0, 0, WalFileKind::History);
        }
        let (head, rest) = (name.get(..24)?, name.get(24..)?);
        let (tli, log, seg) = (hex8(&head[..8])?, hex8(&head[8..16])?, hex8(&head[16..])?);
        match rest {
            "" => file(tli, log, seg, WalFileKind::Segment),
            ".partial" => file(tli, log, seg, WalFileKind::Partial),
            r if r.len() == 16 && r.starts_with('.') && r.ends_with(".backup") && hex8(&r[1..9]).is_some() => {
                file(tli, log, seg, WalFileKind::Backup)
            }
            _ => None,
        }
    }

    /// The segment file of a timeline at a position.
    pub fn segment(tli: u32, log: u32, seg: u32) -> WalFile {
        WalFile { tli, log, seg, kind: WalFileKind::Segment, name: format!("{tli:08X}{log:08X}{seg:08X}") }
    }

    /// The segment of timeline `tli` with segment number `segno` for segments of `seg_size` bytes.
    pub fn from_segno(tli: u32, segno: u64, seg_size: u32) -> WalFile {
        let per = segments_per_log(seg_size);
        WalFile::segment(tli, (segno / per) as u32, (segno % per) as u32)
    }

    /// The segment of timeline `tli` that holds the byte at `lsn`.
    pub fn segment_of_lsn(tli: u32, lsn: u64, seg_size: u32) -> WalFile {
        WalFile::from_segno(tli, lsn / u64::from(seg_size), seg_size)
    }

    /// The position in the WAL, across timelines: (log, segment). History files have none.
    pub fn position(&self) -> Option<(u32, u32)> {
        (self.kind != WalFileKind::History).then_some((self.log, self.seg))
    }

    /// The segment number (log and segment together) for segments of `seg_size` bytes.
    pub fn segno(&self, seg_size: u32) -> u64 {
        u64::from(self.log) * segments_per_log(seg_size) + u64::from(self.seg)
    }

    /// The timeline history file of timeline `tli`.
    pub fn history(tli: u32) -> WalFile {
        WalFile { tli, log: 0, seg: 0, kind: WalFileKind::History, name: format!("{tli:08X}.history") }
    }
}

impl fmt::Display for WalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Segments in one "log" (4 GiB of WAL) for segments of `seg_size` bytes.
pub fn segments_per_log(seg_size: u32) -> u64 {
    0x1_0000_0000 / u64::from(seg_size.max(1))
}

/// True for a segment size PostgreSQL allows: a power of two from 1 MiB to 1 GiB.
pub fn valid_segment_size(size: u64) -> bool {
    size.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&size)
}

/// Parses a log sequence number as PostgreSQL prints it, `0/2000028` (two hex halves).
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let ok = |h: &str| !h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok(hi) || !ok(lo) {
        return None;
    }
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// A log sequence number as PostgreSQL prints it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        let s = WalFile::parse("00000001000000000000002A").unwrap();
        assert_eq!((s.tli, s.log, s.seg, s.kind), (1, 0, 0x2A, WalFileKind::Segment));
        assert_eq!(WalFile::segment(1, 0, 0x2A), s);
        let p = WalFile::parse("0000000200000001000000FF.partial").unwrap();
        assert_eq!((p.tli, p.log, p.seg, p.kind), (2, 1, 0xFF, WalFileKind::Partial));
        let b = WalFile::parse("000000010000000000000002.00000028.backup").unwrap();
        assert_eq!((b.tli, b.seg, b.kind), (1, 2, WalFileKind::Backup));
        let h = WalFile::parse("0000000A.history").unwrap();
        assert_eq!((h.tli, h.kind, h.position()), (10, WalFileKind::History, None));
        assert_eq!(WalFile::history(10), h);
        for bad in [
            "",
            "00000001000000000000002a",
            "00000001000000000000002",
            "000000010000000000000002A",
            "00000001000000000000002A.gz",
            "000000010000000000000002.0000002.backup",
            "0000001.history",
            "RECOVERYXLOG",
            "../00000001000000000000002A",
        ] {
            assert_eq!(WalFile::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn positions_segment_numbers_and_lsns() {
        let mb16 = 16 << 20;
        assert_eq!(segments_per_log(mb16), 256);
        assert_eq!(WalFile::from_segno(1, 256 + 3, mb16), WalFile::segment(1, 1, 3));
        assert_eq!(WalFile::segment(1, 1, 3).segno(mb16), 259);
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(parse_lsn("1A/FF"), Some((0x1A << 32) | 0xFF));
        assert_eq!(parse_lsn("0-2"), None);
        assert_eq!(parse_lsn("/2"), None);
        assert_eq!(format_lsn(0x1_0000_0028), "1/28");
        assert_eq!(WalFile::segment_of_lsn(1, 0x2000028, mb16).name, "000000010000000000000002");
        assert_eq!(WalFile::segment_of_lsn(3, (5 << 32) | 0xFF00_0000, mb16).name, "0000000300000005000000FF");
        assert!(valid_segment_size(1 << 20) && valid_segment_size(1 << 30) && !valid_segment_size(3 << 20));
        assert!(!valid_segment_size(1 << 19));
    }
}
