//! The few S3 calls opendal 0.59 does not make, as small SigV4-signed requests over the reqwest client opendal
//! already uses: PutObject with Object Lock, storage-class and full object headers (opendal's writes carry only
//! Content-Type, Cache-Control, Content-Disposition, Content-Encoding and user metadata, and its storage class is
//! one per operator), the multipart upload that goes with it, PutObjectRetention, HeadObject with every header,
//! and the bucket's Object Lock and versioning configuration. Reads, lists (with versions), and deletes (of
//! versions too) stay with opendal.
//!
//! Why not a crate: `aws-sdk-s3` would add a second HTTP stack and minutes of build time for six calls;
//! reqsign (opendal's signer) is async-only behind a credential-provider framework. SigV4 is a short, fully
//! specified algorithm, tested below against AWS's published example.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::tuning::StorageTuning;
use crate::error::{Error, Result, StorageError, StorageErrorKind};

/// Credentials for signing: access key id, secret, and a session token when they are temporary.
#[derive(Clone)]
struct Credentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// One bucket (and prefix) reached through signed requests.
pub struct S3Api {
    client: reqwest::Client,
    /// `scheme://host[:port]`, no trailing `/`.
    endpoint: String,
    host: String,
    bucket: String,
    /// Key prefix with a trailing `/`, or empty.
    prefix: String,
    region: String,
    credentials: Option<Credentials>,
    retries: usize,
    /// An operation's time limit (`GUMVAULT_STORAGE_TIMEOUT`).
    timeout: Duration,
    /// The region name used in messages.
    name: String,
}

/// A response: status, headers and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

impl S3Api {
    /// A client for `bucket`/`prefix` at `endpoint` (AWS's regional endpoint when `None`), with `credentials`
    /// or else `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn new(
        name: &str,
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: &str,
        credentials: Option<(String, String)>,
    ) -> Result<S3Api> {
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or(format!("https://s3.{region}.amazonaws.com"));
        let parsed = url::Url::parse(&endpoint)
            .map_err(|e| Error::InvalidInput(format!("invalid S3 endpoint {endpoint:?}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(Error::InvalidInput(format!("invalid S3 endpoint {endpoint:?}: no host"))),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials =
            credentials.map(|(key_id, secret)| Credentials { key_id, secret, token: None }).or_else(|| {
                Some(Credentials {
                    key_id: env("AWS_ACCESS_KEY_ID")?,
                    secret: env("AWS_SECRET_ACCESS_KEY")?,
                    token: env("AWS_SESSION_TOKEN"),
                })
            });
        let t = StorageTuning::from_env()?;
        let client = crate::runtime::block_on(async {
            // No redirects: S3 answers a wrong region with one, which is an error to show, and a redirect to
            // another host would carry the session token there.
            reqwest::Client::builder()
                .timeout(Duration::from_secs(t.timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .build()
        })?
        .map_err(|e| Error::InvalidInput(format!("cannot start the S3 client: {e}")))?;
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3Api {
            client,
            endpoint,
            host,
            bucket: bucket.to_string(),
            prefix,
            region: region.to_string(),
            credentials,
            retries: t.retries,
            timeout: Duration::from_secs(t.timeout_secs),
            name: name.to_string(),
        })
    }

    /// Whether requests are signed: credentials were given or are in the environment. opendal finds others
    /// (profiles, web identity); a call made here without them goes out unsigned.
    pub fn signs(&self) -> bool {
        self.credentials.is_some()
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (with a trailing `/`, or empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends a signed request for `path` (relative to the prefix; `None` for the bucket itself), retrying
    /// transport failures and 5xx answers. Answers other than 2xx come back as errors naming `op`.
    pub fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Reply> {
        let key = path.map(|p| format!("{}{p}", self.prefix));
        let mut attempt = 0;
        loop {
            let outcome = crate::runtime::block_on(self.send_once(&method, key.as_deref(), query, headers, &body))?;
            let shown = path.unwrap_or("");
            match outcome {
                Ok(r) if (200..300).contains(&r.status) => return Ok(r),
                Ok(r) if r.status >= 500 && attempt < self.retries => {}
                Ok(r) => return Err(self.http_error(op, shown, &r)),
                Err(e) if attempt < self.retries => drop(e),
                Err(e) => {
                    let msg = format!("{e} (S3 endpoint {})", self.endpoint);
                    return Err(StorageError::new(op, shown, &self.name, StorageErrorKind::Other, msg).into());
                }
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(200 << attempt.min(5)));
        }
    }

    async fn send_once(
        &self,
        method: &reqwest::Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(String, String)],
        body: &Bytes,
    ) -> std::result::Result<Reply, reqwest::Error> {
        let uri = canonical_uri(&self.bucket, key);
        let qs = canonical_query(query);
        let now = Timestamp::now();
        let signed = self.sign(method.as_str(), &uri, &qs, headers, &hex::encode(Sha256::digest(body)), now);
        let url =
            if qs.is_empty() { format!("{}{uri}", self.endpoint) } else { format!("{}{uri}?{qs}", self.endpoint) };
        let mut req = self.client.request(method.clone(), url).body(body.clone());
        for (k, v) in signed.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?;
        Ok(Reply { status, headers, body })
    }

    /// Sends one signed PutObject of exactly `len` bytes read from `body`, never holding the object whole: a
    /// body that fails, ends short or holds more aborts the request before its last piece, and S3 stores nothing
    /// under `path` (it stores a PUT only once its declared length has arrived). The payload is sent unsigned
    /// (`UNSIGNED-PAYLOAD`, as SigV4 allows for S3) since its hash is known only at the end. Not retried: a body
    /// is read once. An answer that comes before the whole body was sent is an error, whatever its status.
    /// Its time limit is twice an operation's: the request lasts as long as the read that feeds it.
    pub fn put_streamed(
        &self,
        path: &str,
        len: u64,
        body: &mut (dyn std::io::Read + Send),
        headers: &[(String, String)],
    ) -> Result<()> {
        use http_body_util::channel::Channel;
        if len == 0 {
            // A PUT of no bytes is complete before any body could fail it: the body is asked first.
            let shown = |e: std::io::Error| Error::io("read the object to write", path, e);
            feed(body, 0, |_| true).map_err(shown)?;
            return self.send("write", reqwest::Method::PUT, Some(path), &[], headers, Bytes::new()).map(drop);
        }
        let uri = canonical_uri(&self.bucket, Some(&format!("{}{path}", self.prefix)));
        let mut all = headers.to_vec();
        all.push(("content-length".into(), len.to_string()));
        let signed = self.sign("PUT", &uri, "", &all, "UNSIGNED-PAYLOAD", Timestamp::now());
        let (mut tx, channel) = Channel::<Bytes, std::io::Error>::new(2);
        let mut req = self.client.put(format!("{}{uri}", self.endpoint)).body(reqwest::Body::wrap(channel));
        req = req.timeout(2 * self.timeout);
        for (k, v) in signed.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        let rt = crate::runtime::runtime()?;
        let sent = rt.spawn(async move {
            let resp = req.send().await?;
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            Ok::<Reply, reqwest::Error>(Reply { status, headers, body: resp.bytes().await? })
        });
        let fed = feed(body, len, |piece| send_piece(rt, &mut tx, &sent, piece));
        match &fed {
            // The request ends without its declared length: S3 discards what it had.
            Err(e) => tx.abort(std::io::Error::new(e.kind(), e.to_string())),
            Ok(()) => drop(tx),
        }
        let outcome = rt.block_on(sent).map_err(|e| std::io::Error::other(e.to_string()));
        let shown = |e: &dyn std::fmt::Display| {
            let msg = format!("{e} (S3 endpoint {})", self.endpoint);
            Error::from(StorageError::new("write", path, &self.name, StorageErrorKind::Other, msg))
        };
        match (outcome, fed) {
            (Ok(Ok(r)), _) if !(200..300).contains(&r.status) => Err(self.http_error("write", path, &r)),
            (_, Err(e)) => Err(shown(&e)),
            (Ok(Ok(_)), Ok(())) => Ok(()),
            (Ok(Err(e)), Ok(())) => Err(shown(&e)),
            (Err(e), Ok(())) => Err(shown(&e)),
        }
    }

    /// The headers to send: `headers` plus host, date, payload hash, session token and Authorization.
    fn sign(
        &self,
        method: &str,
        uri: &str,
        query: &str,
        headers: &[(String, String)],
        payload_hash: &str,
        now: Timestamp,
    ) -> Vec<(String, String)> {
        let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut all: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
        all.push(("host".into(), self.host.clone()));
        all.push(("x-amz-date".into(), amz_date.clone()));
        all.push(("x-amz-content-sha256".into(), payload_hash.to_string()));
        let Some(c) = &self.credentials else { return all };
        if let Some(t) = &c.token {
            all.push(("x-amz-security-token".into(), t.clone()));
        }
        all.sort();
        let auth = authorization(c, &self.region, method, uri, query, &all, &amz_date);
        all.push(("authorization".into(), auth));
        all
    }

    /// An error answer, in words: S3's own code and message, and what to do for the usual ones.
    fn http_error(&self, op: &'static str, path: &str, r: &Reply) -> Error {
        let text = String::from_utf8_lossy(&r.body);
        let code = xml_value(&text, "Code").unwrap_or_else(|| format!("HTTP {}", r.status));
        let detail = xml_value(&text, "Message").map(|m| format!(": {m}")).unwrap_or_default();
        let kind = match r.status {
            404 => StorageErrorKind::NotFound,
            403 => StorageErrorKind::PermissionDenied,
            412 => StorageErrorKind::Exists,
            503 if code == "SlowDown" => StorageErrorKind::RateLimited,
            _ => StorageErrorKind::Other,
        };
        let message = format!("{code}{detail} (bucket {}, endpoint {})", self.bucket, self.endpoint);
        StorageError::new(op, path, &self.name, kind, message).into()
    }
}

/// Hands `piece` to the request's body, waiting while the body is full, unless the request has ended (an early
/// answer): hyper keeps writing the body of a request already answered, and a server that no longer reads would
/// hold the sender forever. False when the piece was not taken.
fn send_piece(
    rt: &tokio::runtime::Runtime,
    tx: &mut http_body_util::channel::Sender<Bytes, std::io::Error>,
    request: &tokio::task::JoinHandle<std::result::Result<Reply, reqwest::Error>>,
    piece: Bytes,
) -> bool {
    loop {
        // A send that times out is dropped before it took the piece (tokio's channel is cancel-safe).
        let piece = piece.clone();
        match rt.block_on(async { tokio::time::timeout(Duration::from_millis(500), tx.send_data(piece)).await }) {
            Ok(sent) => return sent.is_ok(),
            Err(_) if request.is_finished() => return false,
            Err(_) => {}
        }
    }
}

/// Reads `len` bytes from `body` in pieces of up to 1 MiB and hands each to `send` (false: the request is gone).
/// The last piece is handed over only once `body` is found to end there, so a body that holds more never
/// completes the request. An error when `body` fails, ends short or holds more, or the request stopped taking
/// pieces before the end.
fn feed(body: &mut dyn std::io::Read, len: u64, mut send: impl FnMut(Bytes) -> bool) -> std::io::Result<()> {
    use std::io::{ErrorKind, Read};
    let (mut left, mut sent) = (len, 0u64);
    let mut held: Option<Bytes> = None;
    while left > 0 {
        let mut piece = Vec::with_capacity(left.min(1 << 20) as usize);
        let n = (&mut *body).take(left.min(1 << 20)).read_to_end(&mut piece)?;
        if n == 0 {
            let message = format!("the body ended after {} of {len} bytes", len - left);
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, message));
        }
        left -= n as u64;
        if let Some(previous) = held.replace(Bytes::from(piece)) {
            let n = previous.len() as u64;
            if !send(previous) {
                return Err(stopped(len, sent));
            }
            sent += n;
        }
    }
    if body.read(&mut [0u8; 1])? != 0 {
        return Err(std::io::Error::new(ErrorKind::InvalidData, format!("the body holds more than {len} bytes")));
    }
    match held.map(&mut send) {
        Some(false) => Err(stopped(len, sent)),
        _ => Ok(()),
    }
}

/// The request took no more of a body of `len` bytes once `sent` were sent (it was answered early).
fn stopped(len: u64, sent: u64) -> std::io::Error {
    let message = format!("the request ended after {sent} of {len} bytes of its body were sent");
    std::io::Error::other(message)
}

/// `/bucket/key` with every byte outside the unreserved set percent-encoded, `/` kept (S3 encodes once).
fn canonical_uri(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("/{}/{}", uri_encode(bucket, true), uri_encode(k, false)),
        None => format!("/{}", uri_encode(bucket, true)),
    }
}

/// The query string, sorted by name, every name and value encoded.
fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> =
        query.iter().map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true))).collect();
    parts.sort();
    parts.join("&")
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, `/` stays unless `slash`.
pub(super) fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The SigV4 Authorization header for a request whose (sorted, lowercase) headers are `headers`.
fn authorization(
    c: &Credentials,
    region: &str,
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    amz_date: &str,
) -> String {
    let date = &amz_date[..8];
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let payload = headers.iter().find(|(k, _)| k == "x-amz-content-sha256").map(|(_, v)| v.as_str()).unwrap_or("");
    let canonical = format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical)));
    let mut key = hmac(format!("AWS4{}", c.secret).as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}", c.key_id)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The text of the first `<tag>…</tag>` in an XML answer (S3's answers are flat enough for this).
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// Base64 of the MD5 of `body`, for the Content-MD5 header S3 wants on Object Lock requests.
pub fn content_md5(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's example "GET Object" request (S3 API reference, "Signature Calculations for the Authorization
    /// Header: Transferring Payload in a Single Chunk").
    #[test]
    fn signs_like_aws_documents() {
        let c = Credentials {
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        };
        let headers = vec![
            ("host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
            ("range".to_string(), "bytes=0-9".to_string()),
            (
                "x-amz-content-sha256".to_string(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
            ),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let auth = authorization(&c, "us-east-1", "GET", "/test.txt", "", &headers, "20130524T000000Z");
        assert!(auth.ends_with("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"));
    }

    #[test]
    fn a_streamed_body_is_fed_whole_or_fails() {
        let mut sent = Vec::new();
        feed(&mut &[3u8; 3_000_000][..], 3_000_000, |piece| {
            sent.push(piece.len());
            true
        })
        .unwrap();
        assert_eq!(sent, [1 << 20, 1 << 20, 3_000_000 - (2 << 20)]);
        let short = feed(&mut &[3u8; 10][..], 11, |_| true).unwrap_err();
        assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
        // A body that holds more: its last piece is never handed over, so the request never completes.
        let mut handed = 0;
        let more = feed(&mut &[3u8; 3_000_001][..], 3_000_000, |p| {
            handed += p.len();
            true
        });
        assert!(more.is_err() && handed == 2 << 20, "{more:?}, {handed} bytes handed over");
        // A request answered early takes no more: that is an error, not a body sent whole.
        let mut pieces = 0;
        let early = feed(&mut &[3u8; 3_000_000][..], 3_000_000, |_| {
            pieces += 1;
            false
        });
        assert!(early.unwrap_err().to_string().contains("after 0 of 3000000 bytes"));
        assert_eq!(pieces, 1, "feeding stops once the request is gone");
        assert!(feed(&mut &[][..], 0, |_| false).is_ok(), "an empty body has nothing to send");
    }

    #[test]
    fn encodes_keys_and_queries() {
        assert_eq!(canonical_uri("b", Some("a b/c+d")), "/b/a%20b/c%2Bd");
        assert_eq!(canonical_query(&[("versionId", "x/y"), ("retention", "")]), "retention=&versionId=x%2Fy");
        assert_eq!(xml_value("<a><Status>Enabled</Status></a>", "Status").as_deref(), Some("Enabled"));
    }
}
