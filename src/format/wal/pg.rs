//! What PostgreSQL writes that the WAL archive reads: the long page header at the start of every segment
//! (`XLogLongPageHeaderData` in PostgreSQL's `access/xlog_internal.h`), the system identifier at the start of
//! `global/pg_control` (`ControlFileData` in `catalog/pg_control.h`), and timeline history files. PostgreSQL
//! writes these in the machine's byte order; gumvault reads little-endian (x86-64, ARM64).

use crate::error::DecodeError;

/// `XLP_LONG_HEADER`: the page header is the long one (the first page of a segment).
const XLP_LONG_HEADER: u16 = 0x0002;
/// `SizeOfXLogLongPHD`: the long header's size with alignment: the short header (`xlp_magic` u16, `xlp_info`
/// u16, `xlp_tli` u32, `xlp_pageaddr` u64, `xlp_rem_len` u32, padded to 24), then `xlp_sysid` u64 at 24,
/// `xlp_seg_size` u32 at 32 and `xlp_xlog_blcksz` u32 at 36.
const LONG_HEADER_LEN: usize = 40;

/// The long page header of a WAL segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `xlp_magic`: the WAL format version (0xD110 for PostgreSQL 15).
    pub magic: u16,
    /// `xlp_tli`: the timeline of the first record on the page.
    pub tli: u32,
    /// `xlp_pageaddr`: the WAL location of the page (the segment's start).
    pub page_addr: u64,
    /// `xlp_sysid`: the cluster's system identifier.
    pub system_id: u64,
    /// `xlp_seg_size`: the segment size the cluster uses.
    pub seg_size: u32,
    /// `xlp_xlog_blcksz`: the WAL page size.
    pub block_size: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the long page header at the start of a segment.
pub fn segment_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    if bytes.len() < LONG_HEADER_LEN {
        return Err(DecodeError::Truncated { wanted: LONG_HEADER_LEN, at: 0, have: bytes.len() });
    }
    let info = u16_at(bytes, 2);
    if info & XLP_LONG_HEADER == 0 {
        return Err("the first page has no long header (not the start of a WAL segment)".into());
    }
    Ok(SegmentHeader {
        magic: u16_at(bytes, 0),
        tli: u32_at(bytes, 4),
        page_addr: u64_at(bytes, 8),
        system_id: u64_at(bytes, 24),
        seg_size: u32_at(bytes, 32),
        block_size: u32_at(bytes, 36),
    })
}

/// The database system identifier: the first field of `global/pg_control` (`system_identifier`, u64) in every
/// PostgreSQL version.
pub fn control_system_id(pg_control: &[u8]) -> Result<u64, DecodeError> {
    if pg_control.len() < 16 {
        return Err(DecodeError::Truncated { wanted: 16, at: 0, have: pg_control.len() });
    }
    match u64_at(pg_control, 0) {
        0 => Err("the system identifier is 0 (not a pg_control file)".into()),
        id => Ok(id),
    }
}

/// One line of a timeline history file: timeline `parent` ended at `switch_lsn` (the next timeline began there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The ancestor timeline.
    pub parent: u32,
    /// Where it ended and its child began.
    pub switch_lsn: u64,
}

/// Parses a timeline history file: lines `parentTLI<TAB>switch LSN<TAB>reason`, oldest ancestor first; blank
/// lines and `#` comments are skipped (as PostgreSQL's `readTimeLineHistory` does).
pub fn parse_history(text: &str) -> Result<Vec<HistoryEntry>, DecodeError> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let bad = || DecodeError::Invalid(format!("timeline history line {}: {line:?} is not `TLI LSN reason`", i + 1));
        let parent: u32 = fields.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let switch_lsn = fields.next().and_then(super::parse_lsn).ok_or_else(bad)?;
        if out.last().is_some_and(|prev| prev.parent >= parent || prev.switch_lsn > switch_lsn) {
            return Err(DecodeError::Invalid(format!("timeline history line {}: timelines out of order", i + 1)));
        }
        out.push(HistoryEntry { parent, switch_lsn });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first page laid out as PostgreSQL 15 writes it (the integration tests read real segments).
    fn header_bytes(sysid: u64, seg_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x0002u16.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[8..16].copy_from_slice(&0x0100_0000u64.to_le_bytes());
        b[24..32].copy_from_slice(&sysid.to_le_bytes());
        b[32..36].copy_from_slice(&seg_size.to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        b
    }

    #[test]
    fn long_page_headers() {
        let h = segment_header(&header_bytes(7_311_000_000_000_000_123, 16 << 20)).unwrap();
        assert_eq!(h.system_id, 7_311_000_000_000_000_123);
        assert_eq!((h.seg_size, h.block_size, h.tli, h.magic), (16 << 20, 8192, 1, 0xD110));
        let mut short = header_bytes(1, 16 << 20);
        short[2] = 0;
        assert!(segment_header(&short).is_err());
        assert!(segment_header(&[0u8; 39]).is_err());
    }

    #[test]
    fn control_files_and_histories() {
        let mut control = vec![0u8; 8192];
        control[..8].copy_from_slice(&42u64.to_le_bytes());
        assert_eq!(control_system_id(&control).unwrap(), 42);
        assert!(control_system_id(&[0u8; 8192]).is_err());
        assert!(control_system_id(&[1u8; 4]).is_err());
        let text = "1\t0/3000158\tno recovery target specified\n\n# comment\n2\t0/5000000\tat restore point \"x\"\n";
        let h = parse_history(text).unwrap();
        assert_eq!(
            h,
            vec![HistoryEntry { parent: 1, switch_lsn: 0x3000158 }, HistoryEntry { parent: 2, switch_lsn: 0x5000000 }]
        );
        assert!(parse_history("1 nonsense\n").is_err());
        assert!(parse_history("2\t0/5\tx\n1\t0/6\ty\n").is_err());
        assert_eq!(parse_history("").unwrap(), vec![]);
    }
}
