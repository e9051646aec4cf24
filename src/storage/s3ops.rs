//! The S3 calls themselves, over [`S3Api`]: PutObject and multipart uploads with every header, HeadObject,
//! PutObjectRetention, and the bucket's Object Lock and versioning settings.

use bytes::Bytes;
use jiff::Timestamp;
use reqwest::Method;

use super::s3api::{S3Api, content_md5, xml_value};
use crate::error::{Error, Result};

pub use crate::format::repo_config::LockMode;

impl LockMode {
    /// The name S3 uses.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// The mode S3 names so.
    pub fn from_s3(s: &str) -> Option<LockMode> {
        match s.to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A retention to set on an object version: its mode and the date until which it cannot be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Lock mode.
    pub mode: LockMode,
    /// Until when.
    pub until: Timestamp,
}

/// The bucket's Object Lock configuration as S3 reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketLock {
    /// `ObjectLockEnabled` is `Enabled`.
    pub enabled: bool,
    /// The default retention rule, if any: mode and days (years are converted).
    pub default_rule: Option<(LockMode, u32)>,
}

/// Headers of one object gumvault keeps and sets again (for the S3 source; repository objects use only the
/// lock and storage class).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectHeaders {
    /// (header name, value) pairs, e.g. `content-type`, `x-amz-meta-owner`.
    pub pairs: Vec<(String, String)>,
}

/// Parts of a multipart upload are this big (S3's minimum is 5 MiB, its limit 10,000 parts).
pub const PART_SIZE: usize = 8 << 20;

impl S3Api {
    /// PutObject of a whole body with `headers`; returns the new version's id (versioned buckets).
    pub fn put_object(&self, path: &str, body: Bytes, headers: &[(String, String)]) -> Result<Option<String>> {
        let mut h = headers.to_vec();
        if headers.iter().any(|(k, _)| k.starts_with("x-amz-object-lock")) {
            h.push(("content-md5".into(), content_md5(&body)));
        }
        let r = self.send("write", Method::PUT, Some(path), &[], &h, body)?;
        Ok(r.header("x-amz-version-id"))
    }

    /// PutObject only while the name is free (`If-None-Match: *`); false when an object is already there.
    pub fn put_object_new(&self, path: &str, body: Bytes, headers: &[(String, String)]) -> Result<bool> {
        let mut h = headers.to_vec();
        h.push(("if-none-match".into(), "*".into()));
        match self.put_object(path, body, &h) {
            Ok(_) => Ok(true),
            Err(Error::Storage(e)) if e.kind == crate::error::StorageErrorKind::Exists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every header of an object (or of one version), `None` when it does not exist.
    pub fn head(&self, path: &str, version: Option<&str>) -> Result<Option<reqwest::header::HeaderMap>> {
        let q: Vec<(&str, &str)> = version.map(|v| vec![("versionId", v)]).unwrap_or_default();
        match self.send("stat", Method::HEAD, Some(path), &q, &[], Bytes::new()) {
            Ok(r) => Ok(Some(r.headers)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The retention of an object's current version (or of `version`), from its headers.
    pub fn retention(&self, path: &str, version: Option<&str>) -> Result<Option<Retention>> {
        let Some(h) = self.head(path, version)? else { return Ok(None) };
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mode = get("x-amz-object-lock-mode").and_then(|m| LockMode::from_s3(&m));
        let until = get("x-amz-object-lock-retain-until-date").and_then(|d| d.parse::<Timestamp>().ok());
        Ok(mode.zip(until).map(|(mode, until)| Retention { mode, until }))
    }

    /// PutObjectRetention: sets (extends) the retention of the current version, or of `version`.
    pub fn put_retention(&self, path: &str, version: Option<&str>, r: Retention) -> Result<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            r.mode.as_s3(),
            iso(r.until)
        );
        let mut q = vec![("retention", "")];
        if let Some(v) = version {
            q.push(("versionId", v));
        }
        let h = vec![("content-md5".to_string(), content_md5(body.as_bytes()))];
        self.send("retain", Method::PUT, Some(path), &q, &h, Bytes::from(body)).map(drop)
    }

    /// GetObjectLockConfiguration; a bucket without Object Lock answers "not enabled".
    pub fn bucket_lock(&self) -> Result<BucketLock> {
        let r = match self.send("open", Method::GET, None, &[("object-lock", "")], &[], Bytes::new()) {
            Ok(r) => r,
            Err(Error::Storage(e)) if e.message.contains("ObjectLockConfigurationNotFound") => {
                return Ok(BucketLock::default());
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&r.body);
        let enabled = xml_value(&text, "ObjectLockEnabled").is_some_and(|v| v == "Enabled");
        let mode = xml_value(&text, "Mode").and_then(|m| LockMode::from_s3(&m));
        let days = xml_value(&text, "Days")
            .and_then(|d| d.parse::<u32>().ok())
            .or_else(|| xml_value(&text, "Years").and_then(|y| y.parse::<u32>().ok()).map(|y| y * 365));
        Ok(BucketLock { enabled, default_rule: mode.zip(days) })
    }

    /// GetBucketVersioning: `Enabled`, `Suspended`, or `None` for a bucket that never had versioning.
    pub fn bucket_versioning(&self) -> Result<Option<String>> {
        let r = self.send("open", Method::GET, None, &[("versioning", "")], &[], Bytes::new())?;
        Ok(xml_value(&String::from_utf8_lossy(&r.body), "Status"))
    }

    /// Starts a multipart upload with the object's headers; returns its id.
    pub fn multipart_start(&self, path: &str, headers: &[(String, String)]) -> Result<String> {
        let r = self.send("write", Method::POST, Some(path), &[("uploads", "")], headers, Bytes::new())?;
        xml_value(&String::from_utf8_lossy(&r.body), "UploadId").ok_or_else(|| {
            Error::InvalidInput(format!("{path}: S3 answered CreateMultipartUpload without an UploadId"))
        })
    }

    /// Uploads part `n` (from 1); returns its ETag.
    pub fn multipart_part(&self, path: &str, upload: &str, n: usize, body: Bytes) -> Result<String> {
        let num = n.to_string();
        let q = [("partNumber", num.as_str()), ("uploadId", upload)];
        let r = self.send("write", Method::PUT, Some(path), &q, &[], body)?;
        r.header("etag").ok_or_else(|| Error::InvalidInput(format!("{path}: S3 answered UploadPart without an ETag")))
    }

    /// Completes a multipart upload from its parts' ETags.
    pub fn multipart_complete(&self, path: &str, upload: &str, etags: &[String]) -> Result<()> {
        let parts: String = etags
            .iter()
            .enumerate()
            .map(|(i, e)| format!("<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>", i + 1))
            .collect();
        let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
        let r = self.send("write", Method::POST, Some(path), &[("uploadId", upload)], &[], Bytes::from(body))?;
        // S3 may answer 200 with an error in the body.
        match xml_value(&String::from_utf8_lossy(&r.body), "Code") {
            Some(code) => Err(Error::InvalidInput(format!("{path}: completing the upload failed: {code}"))),
            None => Ok(()),
        }
    }

    /// Abandons a multipart upload (best effort: its parts would otherwise be billed).
    pub fn multipart_abort(&self, path: &str, upload: &str) {
        let _ = self.send("write", Method::DELETE, Some(path), &[("uploadId", upload)], &[], Bytes::new());
    }
}

/// RFC 3339 with whole seconds, as S3 writes dates.
pub fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The headers that put a retention on a new object.
pub fn retention_headers(r: Retention) -> Vec<(String, String)> {
    vec![
        ("x-amz-object-lock-mode".into(), r.mode.as_s3().into()),
        ("x-amz-object-lock-retain-until-date".into(), iso(r.until)),
    ]
}
