//! Content-defined chunking: FastCDC (2020) over any `Read`, with a secret gear table so chunk boundaries do not
//! fingerprint known content.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, select_masks};

/// Chunk size limits of one chunker profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// No chunk is smaller (except a stream's last).
    pub min_size: u32,
    /// The average the cut-point masks aim at; a power of two.
    pub avg_size: u32,
    /// No chunk is larger.
    pub max_size: u32,
}

impl ChunkerParams {
    /// The profile for file trees: large chunks, few blobs, fast.
    pub const FILES: ChunkerParams = ChunkerParams { min_size: 256 << 10, avg_size: 1 << 20, max_size: 4 << 20 };
    /// The profile for streams such as database dumps: small chunks that survive scattered row changes
    /// (measured in docs/benchmarks.md: 8 KiB average stores 3-5% of a quiet pg_dump anew, 16 KiB 5-8%).
    pub const STREAM: ChunkerParams = ChunkerParams { min_size: 2 << 10, avg_size: 8 << 10, max_size: 64 << 10 };
    /// The profile for PostgreSQL data files (a base backup): chunks of about four 8 KiB pages. Each blob is
    /// compressed alone, and pages compress far better four at a time (a pgbench table: 45.6 MB stored per GB
    /// at 8 KiB, 32.5 MB at 32 KiB; docs/benchmarks.md), while an unchanged run of pages still dedups.
    pub const PAGES: ChunkerParams = ChunkerParams { min_size: 8 << 10, avg_size: 32 << 10, max_size: 256 << 10 };

    /// Checks the limits fastcdc supports (it only debug-asserts them).
    pub fn validate(&self) -> Result<(), InvalidChunkerParams> {
        let ok = (64..=1 << 20).contains(&self.min_size)
            && (256..=4 << 20).contains(&self.avg_size)
            && (1 << 10..=16 << 20).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.avg_size.is_power_of_two();
        if ok { Ok(()) } else { Err(InvalidChunkerParams(*self)) }
    }
}

/// Chunker limits fastcdc cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid chunker parameters {0:?}: need 64 B <= min <= avg <= max, avg a power of two in 256 B..4 MiB, max in 1 KiB..16 MiB"
)]
pub struct InvalidChunkerParams(pub ChunkerParams);

/// Gear tables derived from the repository key.
#[derive(Clone)]
pub struct Gear {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Gear {
    /// Builds the shifted twin table that FastCDC 2020 uses for two bytes per step.
    pub fn new(gear: [u64; 256]) -> Gear {
        let mut gear_ls = [0u64; 256];
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Gear { gear: Box::new(gear), gear_ls: Box::new(gear_ls) }
    }
}

/// Splits a byte stream into chunks. Memory: one buffer of twice the maximum chunk size.
pub struct Chunker<'g, R> {
    source: R,
    params: ChunkerParams,
    gear: &'g Gear,
    masks: (u64, u64, u64, u64),
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<'g, R: Read> Chunker<'g, R> {
    /// A chunker over `source`; `params` must be valid (see [`ChunkerParams::validate`]).
    pub fn new(source: R, params: ChunkerParams, gear: &'g Gear) -> Self {
        Self::with_size_hint(source, params, gear, None)
    }

    /// Like [`Chunker::new`], for a source of about `size` bytes: a small file gets a small buffer (allocating
    /// and zeroing twice the maximum chunk size for each of 50,000 small files would dominate a backup).
    pub fn with_size_hint(source: R, params: ChunkerParams, gear: &'g Gear, size: Option<u64>) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, Normalization::Level1);
        let full = params.max_size as usize * 2;
        let initial = size.map_or(full, |n| (n as usize).saturating_add(1).clamp(1, full));
        Chunker {
            source,
            params,
            gear,
            masks: (mask_s, mask_l, mask_s << 1, mask_l << 1),
            buf: vec![0u8; initial],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Tops the buffer up to at least `max_size` bytes unless the source ends first.
    fn fill(&mut self) -> io::Result<()> {
        let max = self.params.max_size as usize;
        if self.end - self.start >= max || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < max && !self.eof {
            if self.end == self.buf.len() {
                // The size hint was too small (the file grew): fall back to the full buffer.
                self.buf.resize(max * 2, 0);
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fill()?;
        let avail = &self.buf[self.start..self.end];
        if avail.is_empty() {
            return Ok(None);
        }
        let p = self.params;
        let (ms, ml, msl, mll) = self.masks;
        let (_, len) = cut_gear(
            avail,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            ms,
            ml,
            msl,
            mll,
            &self.gear.gear[..],
            &self.gear.gear_ls[..],
        );
        let len = len.clamp(1, avail.len());
        let chunk = avail[..len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }
}

impl<R: Read> Iterator for Chunker<'_, R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gear() -> Gear {
        Gear::new(crate::format::crypto::MasterKey::from_bytes([7; 32]).gear_table())
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    const SMALL: ChunkerParams = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };

    #[test]
    fn profiles_are_valid() {
        ChunkerParams::FILES.validate().unwrap();
        ChunkerParams::STREAM.validate().unwrap();
        assert!(ChunkerParams { min_size: 10, avg_size: 3000, max_size: 1 }.validate().is_err());
    }

    #[test]
    fn chunks_respect_limits() {
        let g = gear();
        let data = pseudo_random(1 << 20, 1);
        let chunks: Vec<_> = Chunker::new(&data[..], SMALL, &g).map(|c| c.unwrap()).collect();
        let n = chunks.len();
        for (i, c) in chunks.iter().enumerate() {
            assert!(c.len() <= 16384);
            if i + 1 < n {
                assert!(c.len() >= 1024);
            }
        }
        let avg = data.len() / n;
        assert!((2048..=8192).contains(&avg), "average {avg}");
    }

    #[test]
    fn boundaries_resynchronise_after_insertion() {
        let g = gear();
        let data = pseudo_random(2 << 20, 2);
        let mut shifted = data[..500_000].to_vec();
        shifted.extend_from_slice(b"an insertion of a few bytes");
        shifted.extend_from_slice(&data[500_000..]);
        let a: std::collections::HashSet<Vec<u8>> = Chunker::new(&data[..], SMALL, &g).map(|c| c.unwrap()).collect();
        let b: Vec<Vec<u8>> = Chunker::new(&shifted[..], SMALL, &g).map(|c| c.unwrap()).collect();
        let new_bytes: usize = b.iter().filter(|c| !a.contains(*c)).map(|c| c.len()).sum();
        assert!(new_bytes < 3 * 16384, "{new_bytes} bytes new after a small insertion");
    }

    #[test]
    fn the_key_changes_boundaries() {
        let data = pseudo_random(1 << 20, 3);
        let g1 = gear();
        let g2 = Gear::new(crate::format::crypto::MasterKey::from_bytes([8; 32]).gear_table());
        let a: Vec<usize> = Chunker::new(&data[..], SMALL, &g1).map(|c| c.unwrap().len()).collect();
        let b: Vec<usize> = Chunker::new(&data[..], SMALL, &g2).map(|c| c.unwrap().len()).collect();
        assert_ne!(a, b);
    }

    /// A reader that returns at most a few bytes per call, to exercise refills.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn concatenation_is_the_input(len in 0usize..200_000, seed in any::<u64>(), step in 1usize..5000, hint in 0usize..300_000) {
            let g = gear();
            let data = pseudo_random(len, seed);
            let whole: Vec<Vec<u8>> = Chunker::new(&data[..], SMALL, &g).map(|c| c.unwrap()).collect();
            let trickled: Vec<Vec<u8>> = Chunker::new(Trickle(&data, step), SMALL, &g).map(|c| c.unwrap()).collect();
            let hinted: Vec<Vec<u8>> =
                Chunker::with_size_hint(Trickle(&data, step), SMALL, &g, Some(hint as u64)).map(|c| c.unwrap()).collect();
            prop_assert_eq!(&whole, &hinted);
            prop_assert_eq!(whole.concat(), data);
            prop_assert_eq!(whole, trickled);
        }
    }
}
