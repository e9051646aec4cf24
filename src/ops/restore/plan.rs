//! How a restore bounds its memory: files are planned and written a window at a time (two windows in flight),
//! and each range read is streamed blob by blob, so what is held depends on the window and the parallelism, never
//! on the size of the snapshot or of its files.
//!
//! A window holds at most [`Limits::files`] files and [`Limits::blobs`] blobs. A file with more blobs than fit is
//! cut into pieces that go into consecutive windows, in content order. Within a window the blobs are grouped by
//! pack and fetched in pack order, neighbours coalesced into one range read ([`coalesce`]), so reads stay large
//! while the plan stays small.

use std::ops::Range;

use crate::format::blob::BlobInfo;

/// Neighbouring blobs closer than this are fetched with one range read.
pub const COALESCE_GAP: u64 = 1 << 20;
/// A range read covers at most this many bytes of a pack (a data pack's usual size). Reads are streamed blob by
/// blob, so what a read holds is one blob, not its span: the span only bounds how much work one read is.
pub const MAX_RUN_SPAN: u64 = 16 << 20;

/// How much one window may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Files (or pieces of files) in one window.
    pub files: usize,
    /// Blobs in one window.
    pub blobs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { files: 16 << 10, blobs: 64 << 10 }
    }
}

/// One file's share of a window: blobs `blobs` (indexes into its content) of item `item`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Index into [`Window::items`].
    pub item: usize,
    /// Which of the file's blobs, in content order.
    pub blobs: Range<usize>,
}

impl Piece {
    /// The file's first piece: the file is created when its first piece's window is written.
    pub fn is_first(&self) -> bool {
        self.blobs.start == 0
    }
}

/// Files to write together; every item has exactly one piece here.
#[derive(Debug)]
pub struct Window<T> {
    /// The files, each once.
    pub items: Vec<T>,
    /// What each contributes.
    pub pieces: Vec<Piece>,
    /// Blobs in all pieces.
    pub blobs: usize,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window { items: Vec::new(), pieces: Vec::new(), blobs: 0 }
    }
}

impl<T> Window<T> {
    fn is_full(&self, limits: &Limits) -> bool {
        self.items.len() >= limits.files || self.blobs >= limits.blobs
    }
}

/// Cuts a stream of files into windows within [`Limits`].
pub struct Windows<T> {
    limits: Limits,
    current: Window<T>,
}

impl<T: Clone> Windows<T> {
    /// No windows yet; `limits` of at least one file and one blob.
    pub fn new(limits: Limits) -> Self {
        let limits = Limits { files: limits.files.max(1), blobs: limits.blobs.max(1) };
        Windows { limits, current: Window::default() }
    }

    /// Adds a file of `blobs` blobs; hands every window that became full to `ready`, in order. An empty file
    /// takes a piece of no blobs (it is still to be created).
    pub fn push(&mut self, item: T, blobs: usize, ready: &mut dyn FnMut(Window<T>)) {
        let mut start = 0;
        loop {
            let room = self.limits.blobs.saturating_sub(self.current.blobs).max(1);
            let end = blobs.min(start + room);
            self.current.pieces.push(Piece { item: self.current.items.len(), blobs: start..end });
            self.current.items.push(item.clone());
            self.current.blobs += end - start;
            if self.current.is_full(&self.limits) {
                ready(std::mem::take(&mut self.current));
            }
            if end >= blobs {
                return;
            }
            start = end;
        }
    }

    /// The last window, unless it is empty.
    pub fn finish(self) -> Option<Window<T>> {
        (!self.current.items.is_empty()).then_some(self.current)
    }
}

/// A blob to fetch and the places it goes: (index of the file in its window, offset in the file).
#[derive(Clone, Debug)]
pub struct Need {
    /// Where the blob starts in its pack.
    pub offset: u64,
    /// The blob.
    pub info: BlobInfo,
    /// Where its plaintext is written.
    pub targets: Vec<(usize, u64)>,
}

impl Need {
    fn end(&self) -> u64 {
        self.offset + u64::from(self.info.stored_len)
    }
}

/// Splits a pack's needed blobs (sorted by offset) into runs that one range read each covers: neighbours closer
/// than [`COALESCE_GAP`], at most [`MAX_RUN_SPAN`] bytes of the pack, and at most `max_blobs` blobs (so that one
/// window still gives every thread work).
pub fn coalesce(needs: &[Need], max_blobs: usize) -> Vec<&[Need]> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < needs.len() {
        let mut end = start + 1;
        let mut span_end = needs[start].end();
        while end < needs.len() && end - start < max_blobs.max(1) {
            let next = &needs[end];
            let fits = next.offset <= span_end + COALESCE_GAP
                && span_end.max(next.end()) - needs[start].offset <= MAX_RUN_SPAN;
            if !fits {
                break;
            }
            span_end = span_end.max(next.end());
            end += 1;
        }
        runs.push(&needs[start..end]);
        start = end;
    }
    runs
}

/// The most blobs one range read takes so that a window of `total` blobs makes about one run per read in flight
/// (windows overlap, so no thread waits for the others; fewer, longer reads cost fewer round trips).
pub fn blobs_per_run(total: usize, threads: usize) -> usize {
    total.div_ceil(threads.max(1)).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::{BlobKind, Compression};
    use crate::format::id::Id;

    fn windows_of(sizes: &[usize], limits: Limits) -> Vec<Window<usize>> {
        let mut out = Vec::new();
        let mut w = Windows::new(limits);
        for (i, n) in sizes.iter().enumerate() {
            w.push(i, *n, &mut |win| out.push(win));
        }
        out.extend(w.finish());
        out
    }

    /// The property that bounds a restore's memory: no window holds more files or blobs than its limits, however
    /// many files there are and however large, and every blob of every file is in exactly one piece, in order.
    #[test]
    fn windows_never_exceed_their_limits_and_cover_every_blob_once() {
        let limits = Limits { files: 7, blobs: 50 };
        let mut sizes: Vec<usize> = (0..5000).map(|i| (i * 7919) % 23).collect();
        sizes.extend([0, 1, 49, 50, 51, 1000, 0, 0, 333]);
        let windows = windows_of(&sizes, limits);
        let mut next: Vec<usize> = vec![0; sizes.len()];
        for w in &windows {
            assert!(w.items.len() <= limits.files && w.pieces.len() == w.items.len());
            assert!(w.blobs <= limits.blobs, "{} blobs", w.blobs);
            assert_eq!(w.blobs, w.pieces.iter().map(|p| p.blobs.len()).sum::<usize>());
            for p in &w.pieces {
                let file = w.items[p.item];
                assert_eq!(p.blobs.start, next[file], "file {file} out of order");
                assert_eq!(p.is_first(), p.blobs.start == 0);
                next[file] = p.blobs.end;
            }
        }
        assert_eq!(next, sizes);
        assert!(windows.len() >= sizes.iter().sum::<usize>() / limits.blobs);
    }

    #[test]
    fn a_file_larger_than_a_window_goes_in_consecutive_pieces() {
        let windows = windows_of(&[3, 250, 2], Limits { files: 100, blobs: 100 });
        let pieces: Vec<Vec<(usize, Range<usize>)>> =
            windows.iter().map(|w| w.pieces.iter().map(|p| (w.items[p.item], p.blobs.clone())).collect()).collect();
        assert_eq!(pieces, vec![vec![(0, 0..3), (1, 0..97)], vec![(1, 97..197)], vec![(1, 197..250), (2, 0..2)]]);
    }

    fn need(offset: u64, stored: u32, raw: u32) -> Need {
        let info = BlobInfo {
            id: Id([0; 32]),
            kind: BlobKind::Data,
            compression: Compression::None,
            stored_len: stored,
            raw_len: raw,
        };
        Need { offset, info, targets: Vec::new() }
    }

    /// However a pack's blobs lie, no range read (beyond a single blob) spans more than its cap.
    #[test]
    fn runs_are_capped_in_bytes_read() {
        let mut needs = Vec::new();
        let mut at = 0;
        for i in 0..4000u64 {
            let stored = 1000 + (i * 7919 % 40_000) as u32;
            let raw = if i % 5 == 0 { 1 << 20 } else { stored * 3 };
            needs.push(need(at, stored, raw));
            at += u64::from(stored) + if i % 97 == 0 { 2 << 20 } else { 0 };
        }
        needs.push(need(at, 9 << 20, 9 << 20));
        let runs = coalesce(&needs, usize::MAX);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), needs.len());
        for r in runs.iter().filter(|r| r.len() > 1) {
            let span = r.last().unwrap().end() - r[0].offset;
            assert!(span <= MAX_RUN_SPAN, "{span}");
            assert!(r.windows(2).all(|p| p[1].offset <= p[0].end() + COALESCE_GAP));
        }
        assert!(coalesce(&needs, 16).iter().all(|r| r.len() <= 16));
        assert_eq!(blobs_per_run(16_384, 2), 8192);
        assert_eq!(blobs_per_run(10, 64), 16);
    }
}
