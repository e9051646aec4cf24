//! The way back for an S3 source: a snapshot's files written as objects into a bucket, with their Content-Type,
//! large ones in parts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::bucket::open_bucket;
use crate::error::{Error, Result, StorageError};
use crate::format::tree::NodeKind;
use crate::ops::restore::Entry;
use crate::repo::reader::BlobReader;

/// Multipart chunk size when restoring objects (S3 needs parts of at least 5 MiB).
const WRITE_CHUNK: usize = 8 << 20;

/// What a restore into a bucket did.
#[derive(Debug, Default, serde::Serialize)]
pub struct BucketRestore {
    /// Objects written.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Writes the files of `entries` (paths relative to the source's directory) as objects below the URL's prefix,
/// with their Content-Type. Refuses to replace existing objects unless `overwrite`.
pub fn restore_to_bucket(
    reader: &BlobReader<'_>,
    entries: &[Entry],
    url: &str,
    overwrite: bool,
    concurrency: usize,
    progress: &AtomicU64,
) -> Result<BucketRestore> {
    let op = open_bucket(url, None)?;
    let storage_err = |op_name: &'static str, key: &str, e: opendal::Error| bucket_error(url, op_name, key, e);
    let files: Vec<(&Entry, String)> = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File)
        .map(|e| (e, e.path.to_string_lossy().trim_start_matches('/').to_string()))
        .collect();
    if !overwrite {
        refuse_existing(&op, url, &files)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start upload threads: {e}")))?;
    let done = pool.install(|| {
        files
            .par_iter()
            .map(|(entry, key)| -> Result<u64> {
                let opts = opendal::options::WriteOptions {
                    content_type: entry.node.content_type.clone(),
                    chunk: Some(WRITE_CHUNK),
                    ..Default::default()
                };
                let mut w = op.writer_options(key, opts).map_err(|e| storage_err("write", key, e))?;
                let mut n = 0u64;
                for id in &entry.node.content {
                    let data = reader.read(id)?;
                    n += data.len() as u64;
                    progress.fetch_add(data.len() as u64, Ordering::Relaxed);
                    w.write(data).map_err(|e| storage_err("write", key, e))?;
                }
                w.close().map_err(|e| storage_err("write", key, e))?;
                Ok(n)
            })
            .collect::<Result<Vec<u64>>>()
    })?;
    Ok(BucketRestore { objects: done.len() as u64, bytes: done.iter().sum() })
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
