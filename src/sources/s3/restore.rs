//! The way back for an S3 source: a snapshot's files written as objects into a bucket, with their Content-Type,
//! user metadata, Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires; objects
//! larger than one part (8 MiB) in a multipart upload.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::bucket::{SourceBucket, open_source};
use crate::error::{Error, Result, StorageError};
use crate::format::tree::NodeKind;
use crate::ops::restore::Entry;
use crate::repo::reader::BlobReader;

use crate::storage::s3ops::PART_SIZE;

/// What a restore into a bucket did.
#[derive(Debug, Default, serde::Serialize)]
pub struct BucketRestore {
    /// Objects written.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects not written because their content could not be read from the repository, each as `key: why`
    /// (every other object was written).
    pub errors: Vec<String>,
}

/// Why one object was not written.
enum Failure {
    /// Its content could not be read from the repository (damaged or missing): that object alone.
    Content(Error),
    /// The bucket refused or failed: the objects after it would fare the same, so the restore stops.
    Bucket(Error),
}

/// Writes the files of `entries` (paths relative to the source's directory) as objects below the URL's prefix,
/// with their Content-Type. Refuses to replace existing objects unless `overwrite`. An object whose content
/// cannot be read is left out and named in [`BucketRestore::errors`] while the others are written (as a restore
/// into a directory does); a failure of the bucket itself stops the restore with that error.
pub fn restore_to_bucket(
    reader: &BlobReader<'_>,
    entries: &[Entry],
    url: &str,
    overwrite: bool,
    concurrency: usize,
    progress: &AtomicU64,
) -> Result<BucketRestore> {
    let bucket = open_source(url, None)?;
    let files: Vec<(&Entry, String)> = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File)
        .map(|e| (e, e.path.to_string_lossy().trim_start_matches('/').to_string()))
        .collect();
    if !overwrite {
        refuse_existing(&bucket.op, url, &files)?;
    }
    let pool = crate::runtime::io_pool(concurrency, "uploads to the bucket")?;
    let bucket_failed = std::sync::Mutex::new(None);
    let outcomes: Vec<Option<Result<u64>>> = pool.install(|| {
        files
            .par_iter()
            .map(|(entry, key)| {
                if bucket_failed.lock().expect("failure lock").is_some() {
                    return None;
                }
                match upload(reader, &bucket, entry, key, progress) {
                    Ok(n) => Some(Ok(n)),
                    Err(Failure::Content(e)) => Some(Err(e)),
                    Err(Failure::Bucket(e)) => {
                        bucket_failed.lock().expect("failure lock").get_or_insert(e);
                        None
                    }
                }
            })
            .collect()
    });
    if let Some(e) = bucket_failed.into_inner().expect("failure lock") {
        return Err(e);
    }
    let mut done = BucketRestore::default();
    for ((_, key), outcome) in files.iter().zip(outcomes) {
        match outcome {
            Some(Ok(n)) => {
                done.objects += 1;
                done.bytes += n;
            }
            Some(Err(e)) => done.errors.push(format!("{key}: {e}")),
            None => {}
        }
    }
    Ok(done)
}

/// The headers an object is written with: its Content-Type and the other headers the backup kept.
fn headers(entry: &Entry) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = entry.node.s3_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(t) = &entry.node.content_type {
        h.push(("content-type".into(), t.clone()));
    }
    h
}

/// An object's content cut into parts of [`PART_SIZE`] (the last one shorter), read blob by blob.
struct Parts<'a, 'r> {
    reader: &'a BlobReader<'r>,
    blobs: crate::repo::reader::ContentIds<'a, 'r>,
    buf: Vec<u8>,
    bytes: u64,
    progress: &'a AtomicU64,
}

impl Parts<'_, '_> {
    /// The next part, `None` when everything was returned.
    fn next_part(&mut self) -> Result<Option<Vec<u8>>> {
        while self.buf.len() < PART_SIZE {
            let Some(id) = self.blobs.next() else { break };
            let data = self.reader.read(&id?)?;
            self.bytes += data.len() as u64;
            self.progress.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.buf.extend_from_slice(&data);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let rest = self.buf.split_off(PART_SIZE.min(self.buf.len()));
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}

/// Writes one object: in one PutObject when it fits in a part, else in a multipart upload (abandoned when a
/// part fails, so no half object appears).
fn upload(
    reader: &BlobReader<'_>,
    b: &SourceBucket,
    entry: &Entry,
    key: &str,
    progress: &AtomicU64,
) -> std::result::Result<u64, Failure> {
    let headers = headers(entry);
    let mut parts = Parts { reader, blobs: reader.content(&entry.node), buf: Vec::new(), bytes: 0, progress };
    let first = parts.next_part().map_err(Failure::Content)?.unwrap_or_default();
    let Some(second) = parts.next_part().map_err(Failure::Content)? else {
        b.api.put_object(key, first.into(), &headers).map_err(Failure::Bucket)?;
        return Ok(parts.bytes);
    };
    let upload = b.api.multipart_start(key, &headers).map_err(Failure::Bucket)?;
    let sent = (|| -> std::result::Result<Vec<String>, Failure> {
        let mut etags = vec![b.api.multipart_part(key, &upload, 1, first.into()).map_err(Failure::Bucket)?];
        let mut next = Some(second);
        while let Some(part) = next {
            etags.push(b.api.multipart_part(key, &upload, etags.len() + 1, part.into()).map_err(Failure::Bucket)?);
            next = parts.next_part().map_err(Failure::Content)?;
        }
        Ok(etags)
    })();
    match sent.and_then(|etags| b.api.multipart_complete(key, &upload, &etags).map_err(Failure::Bucket)) {
        Ok(()) => Ok(parts.bytes),
        Err(e) => {
            b.api.multipart_abort(key, &upload);
            Err(e)
        }
    }
}

/// A failed bucket operation, named as storage errors are.
fn bucket_error(url: &str, op: &'static str, key: &str, e: opendal::Error) -> Error {
    StorageError::from_opendal(op, key, url, &e).into()
}

/// Fails, naming a few, when objects of `files` already exist in the bucket.
fn refuse_existing(op: &opendal::blocking::Operator, url: &str, files: &[(&Entry, String)]) -> Result<()> {
    let existing: HashSet<String> =
        match op.list_options("", opendal::options::ListOptions { recursive: true, ..Default::default() }) {
            Ok(list) => list.into_iter().map(|e| e.path().trim_start_matches('/').to_string()).collect(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(bucket_error(url, "list", url, e)),
        };
    let clashes: Vec<&str> =
        files.iter().filter(|(_, k)| existing.contains(k)).map(|(_, k)| k.as_str()).take(5).collect();
    if clashes.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "refusing to replace objects that already exist in {url} (e.g. {}); pass --overwrite to replace them",
        clashes.join(", ")
    )))
}
