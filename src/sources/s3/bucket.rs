//! Opening a bucket (and prefix) from an `s3://` URL, with the source's credentials when it names them.

use crate::config::S3Source;
use crate::error::{Error, Result};
use crate::storage::Location;

/// Objects fetched or written at once when nothing says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Opens a bucket (and prefix) as an operator.
pub fn open_bucket(url: &str, src: Option<&S3Source>) -> Result<opendal::blocking::Operator> {
    let loc = Location::parse(url)?;
    if !matches!(loc, Location::S3 { .. }) {
        return Err(Error::InvalidInput(format!("{url} is not an s3:// URL")));
    }
    let credentials = match src.map(|s| (&s.access_key_id, &s.secret_access_key)) {
        Some((Some(k), Some(s))) => Some((k.resolve()?, s.resolve()?)),
        _ => None,
    };
    loc.operator("source", url, credentials)
}
