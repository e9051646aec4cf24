//! What a base backup says about itself, read from the files pg_basebackup sends: `backup_label` (where the
//! WAL starts, on which timeline), `backup_manifest` (where it ends), `global/pg_control` (the cluster's system
//! identifier and WAL segment size). And WAL locations and segment names, computed as PostgreSQL computes them.

use crate::error::{Error, Result};

/// A WAL location (`XLogRecPtr`), written `HI/LO` in hex as PostgreSQL writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `0/2000028`.
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }

    /// The segment file (on timeline `tli`) holding the byte at this location.
    pub fn segment(self, tli: u32, segment_size: u64) -> String {
        wal_file_name(tli, self.0 / segment_size, segment_size)
    }

    /// The segment holding the last byte before this location: where WAL that ends here ends (a location at a
    /// segment's very start needs nothing of that segment).
    pub fn segment_before(self, tli: u32, segment_size: u64) -> String {
        wal_file_name(tli, self.0.saturating_sub(1) / segment_size, segment_size)
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// The name of WAL segment `segno` on timeline `tli`: `TTTTTTTTXXXXXXXXYYYYYYYY` (PostgreSQL's `XLogFileName`).
pub fn wal_file_name(tli: u32, segno: u64, segment_size: u64) -> String {
    let per_xlogid = 0x1_0000_0000 / segment_size;
    format!("{tli:08X}{:08X}{:08X}", segno / per_xlogid, segno % per_xlogid)
}

/// What `backup_label` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// `START WAL LOCATION`.
    pub start: Lsn,
    /// The segment named beside it (`(file ...)`).
    pub start_file: String,
    /// `START TIMELINE`.
    pub timeline: u32,
}

/// Parses a `backup_label`.
pub fn parse_label(text: &[u8]) -> Result<Label> {
    let text = String::from_utf8_lossy(text);
    let bad = |why: &str| Error::SourceFailed(format!("the base backup's backup_label is not understood: {why}"));
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let start_line = field("START WAL LOCATION:").ok_or_else(|| bad("no START WAL LOCATION"))?;
    let (lsn, file) = start_line.split_once(" (file ").ok_or_else(|| bad("START WAL LOCATION without its file"))?;
    let start = Lsn::parse(lsn).ok_or_else(|| bad("START WAL LOCATION is not a WAL location"))?;
    let start_file = file.trim_end_matches(')').to_string();
    let timeline = match field("START TIMELINE:") {
        Some(t) => t.parse().map_err(|_| bad("START TIMELINE is not a number"))?,
        None => u32::from_str_radix(start_file.get(..8).unwrap_or(""), 16).map_err(|_| bad("no START TIMELINE"))?,
    };
    Ok(Label { start, start_file, timeline })
}

/// The `End-LSN` of the last of a manifest's `WAL-Ranges`, from its tail (the ranges follow the file list).
pub fn manifest_end_lsn(tail: &[u8]) -> Option<Lsn> {
    let text = String::from_utf8_lossy(tail);
    let ranges = &text[text.rfind("\"WAL-Ranges\"")?..];
    let key = "\"End-LSN\"";
    let after = &ranges[ranges.rfind(key)? + key.len()..];
    let value = after.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Lsn::parse(&value[..value.find('"')?])
}

/// The end location pg_basebackup reports with `--verbose` (`write-ahead log end point: 0/2000100`).
pub fn stderr_end_lsn(stderr: &str) -> Option<Lsn> {
    stderr.lines().rev().find_map(|l| l.split_once("write-ahead log end point: ")).and_then(|(_, v)| Lsn::parse(v))
}

/// What `global/pg_control` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// `system_identifier`: the cluster's identity, shared by every WAL segment it writes.
    pub system_id: u64,
    /// `pg_control_version`.
    pub version: u32,
    /// `xlog_seg_size`, when the layout of this `pg_control_version` is known (PostgreSQL 13 to 16: 1300).
    pub segment_size: Option<u64>,
}

/// `pg_control_version` of PostgreSQL 13–16, whose `ControlFileData` layout is known here.
const CONTROL_VERSION_13: u32 = 1300;
/// Offset of `xlog_seg_size` in that layout (after the checkpoint copy, the settings, `floatFormat`,
/// `blcksz`, `relseg_size` and `xlog_blcksz`; checked against pg_controldata).
const SEG_SIZE_OFFSET_13: usize = 228;

/// Parses `global/pg_control` (its first bytes; the file is 8 KiB).
pub fn parse_control(bytes: &[u8]) -> Result<Control> {
    let u32_at = |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let system_id = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| Error::SourceFailed("the base backup's global/pg_control is too short".into()))?;
    let version = u32_at(8).unwrap_or(0);
    let segment_size = (version == CONTROL_VERSION_13)
        .then(|| u32_at(SEG_SIZE_OFFSET_13))
        .flatten()
        .map(u64::from)
        .filter(|s| s.is_power_of_two() && (1 << 20..=1 << 30).contains(s));
    Ok(Control { system_id, version, segment_size })
}

/// Parses a size as `SHOW wal_segment_size` prints it (`16MB`, `1GB`).
pub fn parse_setting_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let unit = match s[digits..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    Some(n * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: \
                         0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 11:39:46 \
                         UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n";

    #[test]
    fn the_label_gives_the_start() {
        let l = parse_label(LABEL.as_bytes()).unwrap();
        assert_eq!(l.start, Lsn(0x2000028));
        assert_eq!(l.start_file, "000000010000000000000002");
        assert_eq!(l.timeline, 1);
        assert_eq!(l.start.segment(1, 16 << 20), l.start_file);
        assert!(parse_label(b"LABEL: x\n").is_err());
    }

    #[test]
    fn locations_and_segment_names_are_postgres_own() {
        let l = Lsn::parse("1A/FF000100").unwrap();
        assert_eq!(l.to_string(), "1A/FF000100");
        assert_eq!(l.segment(3, 16 << 20), "000000030000001A000000FF");
        assert_eq!(Lsn::parse("0/3000000").unwrap().segment_before(1, 16 << 20), "000000010000000000000002");
        assert_eq!(Lsn::parse("0/3000001").unwrap().segment_before(1, 16 << 20), "000000010000000000000003");
        // 64 MiB segments: 64 of them per xlogid.
        assert_eq!(Lsn::parse("1/8000000").unwrap().segment(1, 64 << 20), "000000010000000100000002");
        assert_eq!(Lsn::parse("x"), None);
    }

    #[test]
    fn the_end_comes_from_the_manifest_or_the_verbose_output() {
        let tail = br#"...", "Checksum": "00000000" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "538a"}"#;
        assert_eq!(manifest_end_lsn(tail), Some(Lsn(0x2000100)));
        assert_eq!(manifest_end_lsn(b"{\"Files\": []}"), None);
        let err = "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n\
                   pg_basebackup: write-ahead log end point: 0/2000100\npg_basebackup: base backup completed\n";
        assert_eq!(stderr_end_lsn(err), Some(Lsn(0x2000100)));
    }

    #[test]
    fn pg_control_gives_the_system_and_the_segment_size() {
        let mut b = vec![0u8; 8192];
        b[..8].copy_from_slice(&7714298933016722503u64.to_le_bytes());
        b[8..12].copy_from_slice(&1300u32.to_le_bytes());
        b[228..232].copy_from_slice(&(16u32 << 20).to_le_bytes());
        let c = parse_control(&b).unwrap();
        assert_eq!((c.system_id, c.version, c.segment_size), (7714298933016722503, 1300, Some(16 << 20)));
        b[8..12].copy_from_slice(&1700u32.to_le_bytes());
        assert_eq!(parse_control(&b).unwrap().segment_size, None, "an unknown layout is not guessed at");
        assert!(parse_control(&b[..4]).is_err());
        assert_eq!(parse_setting_size("16MB"), Some(16 << 20));
        assert_eq!(parse_setting_size("1GB"), Some(1 << 30));
        assert_eq!(parse_setting_size("lots"), None);
    }
}
