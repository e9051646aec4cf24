//! Opening a bucket (and prefix) from an `s3://` URL, with the source's credentials when it names them.

use crate::config::S3Source;
use crate::error::{Error, Result};
use crate::storage::Location;
use crate::storage::s3api::S3Api;

/// Objects fetched or written at once when nothing says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// A bucket (and prefix) both ways: opendal for listing and reading, signed calls for every header of an
/// object and for writes that carry them.
pub struct SourceBucket {
    /// Lists and reads.
    pub op: opendal::blocking::Operator,
    /// HeadObject with every header; PutObject and multipart uploads with them.
    pub api: S3Api,
}

/// Opens a bucket (and prefix) as an operator.
pub fn open_bucket(url: &str, src: Option<&S3Source>) -> Result<opendal::blocking::Operator> {
    Ok(open_source(url, src)?.op)
}

/// Opens a bucket (and prefix), with the source's credentials when it names them.
pub fn open_source(url: &str, src: Option<&S3Source>) -> Result<SourceBucket> {
    let loc = Location::parse(url)?;
    if !matches!(loc, Location::S3 { .. }) {
        return Err(Error::InvalidInput(format!("{url} is not an s3:// URL")));
    }
    let credentials = match src.map(|s| (&s.access_key_id, &s.secret_access_key)) {
        Some((Some(k), Some(s))) => Some((k.resolve()?, s.resolve()?)),
        _ => None,
    };
    let op = loc.operator("source", url, credentials.clone())?;
    let api = loc.s3_api(url, credentials)?.ok_or_else(|| Error::InvalidInput(format!("{url} is not an s3:// URL")))?;
    Ok(SourceBucket { op, api })
}

/// Headers kept with an object and set again on restore, besides Content-Type; and user metadata (`x-amz-meta-`).
pub const KEPT_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// The headers of `h` that are kept: [`KEPT_HEADERS`] and every `x-amz-meta-*`, by lowercase name.
pub fn kept_headers(h: &reqwest::header::HeaderMap) -> std::collections::BTreeMap<String, String> {
    h.iter()
        .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()) || k.as_str().starts_with("x-amz-meta-"))
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}
