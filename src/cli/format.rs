//! Human-readable sizes, durations and times.

/// `1.5 GiB`, `340 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `3.2s`, `4m 05s`, `2h 03m`.
pub(crate) fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    if s < 3600 { format!("{}m {:02}s", s / 60, s % 60) } else { format!("{}h {:02}m", s / 3600, (s % 3600) / 60) }
}

/// Local time for people: `2026-11-25 14:03:11`.
pub(crate) fn local_time(t: &jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A name (or path) as one line of text that cannot move a terminal's cursor: control characters as `\n`, `\t`,
/// `\r` or `\u{…}`, bytes that are not UTF-8 as `\xNN`, and a backslash as `\\` so every escape reads back
/// unambiguously. A file name may hold anything but `/` and NUL; printed raw, a newline in one would forge
/// another line of `ls`. `--json` prints names exactly.
pub(crate) fn escaped(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A size in bytes: `4096`, `16K`, `512MiB`, `2G`, `1TB` (units are binary either way).
pub(crate) fn parse_bytes(s: &str) -> crate::Result<u64> {
    let bad = || crate::Error::InvalidInput(format!("invalid size {s:?}: use e.g. 4096, 16K, 512MiB or 2GiB"));
    let t = s.trim().trim_end_matches(['B', 'b']).trim_end_matches(['i']);
    let shift = match t.chars().last() {
        Some('K' | 'k') => 10,
        Some('M' | 'm') => 20,
        Some('G' | 'g') => 30,
        Some('T' | 't') => 40,
        _ => 0,
    };
    let num = if shift == 0 { t } else { &t[..t.len() - 1] };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
        assert_eq!(super::duration(3.25), "3.2s");
        assert_eq!(super::duration(125.0), "2m 05s");
        assert_eq!(super::duration(7380.0), "2h 03m");
    }

    #[test]
    fn names_are_escaped_to_one_line() {
        assert_eq!(super::escaped(b"plain name.txt"), "plain name.txt");
        assert_eq!(super::escaped(b"a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(super::escaped(b"\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(super::escaped(b"back\\slash"), "back\\\\slash");
        assert_eq!(super::escaped(b"bad\xffbyte"), "bad\\xffbyte");
        assert_eq!(super::escaped("caf\u{e9} \u{85}".as_bytes()), "caf\u{e9} \\u{85}");
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("16K").unwrap(), 16 << 10);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1T").unwrap(), 1 << 40);
        for bad in ["", "x", "1.5G", "-1M", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
