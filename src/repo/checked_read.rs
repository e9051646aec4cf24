//! An immutable object read as a stream and checked against its name on the way, for work that never holds the
//! object whole: copies (`sync`, `sync --into`) and `check --read-data` (`pack_verify`). The read that would hand
//! over the object's last bytes fails instead unless the whole matches, so a writer fed from it (see
//! [`crate::storage::Backend::write_streamed`]) never completes a damaged copy.

use std::io::Read;

use crate::error::{Error, StorageError, StorageErrorKind};
use crate::format::id::Id;
use crate::storage::stream_error;

/// The object at `path` in `region`, expected to be `left` bytes whose unkeyed BLAKE3 is `name`.
pub struct CheckedRead<R> {
    inner: R,
    hasher: blake3::Hasher,
    name: Id,
    left: u64,
    path: String,
    region: String,
    /// Why the stream failed, when it did: the error to report (the writer's own is only a consequence).
    pub failure: Option<Error>,
}

impl<R: Read> CheckedRead<R> {
    /// Checks `inner`, the `len` bytes of the object at `path` (named `name`) in `region`.
    pub fn new(inner: R, name: Id, len: u64, path: &str, region: &str) -> CheckedRead<R> {
        CheckedRead {
            inner,
            hasher: blake3::Hasher::new(),
            name,
            left: len,
            path: path.to_string(),
            region: region.to_string(),
            failure: None,
        }
    }

    fn fail(&mut self, e: Error, kind: std::io::ErrorKind) -> std::io::Error {
        let io = std::io::Error::new(kind, e.to_string());
        self.failure = Some(e);
        io
    }
}

impl<R: Read> CheckedRead<R> {
    /// At the end: the whole object against its name (an empty object too). Once failed, it stays failed.
    fn check_end(&mut self) -> std::io::Result<()> {
        if let Some(e) = &self.failure {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
        }
        if Id(*self.hasher.finalize().as_bytes()) != self.name {
            let damaged = Error::corrupt(&self.path, "content does not match its name (damaged or truncated)");
            return Err(self.fail(damaged, std::io::ErrorKind::InvalidData));
        }
        Ok(())
    }
}

impl<R: Read> Read for CheckedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return self.check_end().map(|()| 0);
        }
        if let Some(e) = &self.failure {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            // A signal to try again, not a failure of the object.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let kind = e.kind();
                return Err(self.fail(stream_error(&self.path, &self.region, &e), kind));
            }
        };
        if n == 0 {
            let message = format!("the object ended {} bytes before its listed size", self.left);
            let short = StorageError::new("read", &self.path, &self.region, StorageErrorKind::ShortRead, message);
            return Err(self.fail(short.into(), std::io::ErrorKind::UnexpectedEof));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        if self.left == 0 {
            // The last bytes are handed over only once the whole has been checked.
            self.check_end()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], name: Id, len: u64) -> (std::io::Result<Vec<u8>>, Option<Error>) {
        let mut r = CheckedRead::new(data, name, len, "data/ab/x", "r");
        let mut out = Vec::new();
        let outcome = r.read_to_end(&mut out).map(|_| out);
        (outcome, r.failure)
    }

    #[test]
    fn passes_a_sound_object_and_withholds_the_end_of_a_damaged_one() {
        let data = vec![7u8; 100_000];
        let name = Id::of_object(&data);
        let (ok, failure) = read_all(&data, name, data.len() as u64);
        assert_eq!(ok.unwrap(), data);
        assert!(failure.is_none());

        let mut damaged = data.clone();
        damaged[99_999] ^= 1;
        let mut r = CheckedRead::new(&damaged[..], name, data.len() as u64, "data/ab/x", "r");
        let mut handed = Vec::new();
        let mut buf = [0u8; 4096];
        let err = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("a damaged object must not end cleanly"),
                Ok(n) => handed.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(handed.len() < damaged.len(), "the last bytes are never handed over");
        assert!(matches!(r.failure, Some(Error::Corrupt { .. })), "{:?}", r.failure);
    }

    #[test]
    fn an_empty_object_is_checked_too() {
        let (outcome, failure) = read_all(&[], Id::of_object(b"a pack that was emptied"), 0);
        assert_eq!(outcome.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        assert!(matches!(failure, Some(Error::Corrupt { .. })));
        let (outcome, failure) = read_all(&[], Id::of_object(b""), 0);
        assert!(outcome.unwrap().is_empty() && failure.is_none());
    }

    #[test]
    fn a_short_object_fails() {
        let data = vec![1u8; 1000];
        let (outcome, failure) = read_all(&data[..600], Id::of_object(&data), 1000);
        assert_eq!(outcome.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(failure.is_some_and(|e| e.to_string().contains("400 bytes before")));
    }
}
