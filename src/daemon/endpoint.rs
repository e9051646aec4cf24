//! What the HTTP endpoint answers, decided from what the last refresh published ([`Published`]) and never from
//! storage: a request costs a lock, a comparison and a copy of bytes made beforehand. Who may read the data is
//! decided here too: the bearer token (compared in constant time) when `[http] token` is set, otherwise the
//! `Host` header must name this endpoint, so that a web page whose name was re-pointed at this machine (DNS
//! rebinding) cannot read `/status` through a visitor's browser.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::status::Health;

/// The dashboard: one self-contained page (no external scripts or fonts) that reads /status.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Who may read `/status` and `/metrics`, as the config said at the last refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// `[http] token` is set: requests need `Authorization: Bearer` with this value.
    Token(String),
    /// No token: the `Host` header must be an IP address, `localhost`, or one of these names (lowercase, without
    /// port): `[http] allowed_hosts` and the name the endpoint was told to listen on.
    Open {
        /// Host names accepted besides IP addresses and `localhost`.
        hosts: Vec<String>,
    },
    /// The config or its token could not be read: the data is not served at all (fail closed).
    Broken,
}

/// The status as it is sent: serialised once per refresh, not once per request.
#[derive(Clone, Debug)]
pub struct View {
    /// The JSON of `status --json`.
    pub status_json: Bytes,
    /// The Prometheus text.
    pub metrics: Bytes,
    /// The overall health, for `/healthz`.
    pub health: Health,
}

/// What one refresh computed: the access rule and the status (or why there is none).
#[derive(Clone, Debug)]
pub struct Published {
    /// Who may read the data.
    pub access: Access,
    /// The status, or the message of the error that kept it from being computed.
    pub view: Result<View, String>,
    /// When this was published.
    pub at: Instant,
    /// After this long without a newer publication the refresher is stuck, and `/healthz` says so.
    pub stale_after: Duration,
}

/// The parts of a request the endpoint looks at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw `Host` header, if any.
    pub host: Option<&'a [u8]>,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
}

/// An answer: status code, content type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub code: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

fn reply(code: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    Reply { code, content_type, body: body.into() }
}

fn text(code: u16, body: impl Into<Bytes>) -> Reply {
    reply(code, "text/plain; charset=utf-8", body)
}

/// The answer to a request, from the last publication (`None` before the first one).
pub fn respond(req: &Request<'_>, published: Option<&Published>, now: Instant) -> Reply {
    if req.method != "GET" {
        return text(405, "read-only: only GET\n");
    }
    match req.path {
        // The page holds no data (it fetches /status with the token), so it is open, like /healthz.
        "/" => reply(200, "text/html; charset=utf-8", DASHBOARD),
        "/healthz" => healthz(published, now),
        "/status" | "/metrics" => data(req, published),
        _ => text(404, "not found: try /, /status, /metrics, /healthz\n"),
    }
}

/// 200 when the last refresh found everything healthy and is recent; 503 otherwise, with one word of why.
fn healthz(published: Option<&Published>, now: Instant) -> Reply {
    let Some(p) = published else { return text(503, "starting\n") };
    let age = now.saturating_duration_since(p.at);
    if age > p.stale_after {
        return text(503, format!("stale: the status was last refreshed {}s ago\n", age.as_secs()));
    }
    match &p.view {
        Ok(v) => text(if v.health == Health::Healthy { 200 } else { 503 }, format!("{}\n", v.health.as_str())),
        // The reason may name paths and hosts: it is for the log and for callers who may see the data.
        Err(_) => text(503, "unknown: the status could not be computed (see the log)\n"),
    }
}

/// `/status` and `/metrics`, for callers the access rule lets in.
fn data(req: &Request<'_>, published: Option<&Published>) -> Reply {
    let Some(p) = published else { return text(503, "starting: the status is not computed yet\n") };
    match &p.access {
        Access::Broken => {
            return text(
                500,
                "the config file or its [http] token cannot be read: see the log of gumvault serve/daemon\n",
            );
        }
        Access::Token(token) if !bearer_matches(req.authorization, token) => {
            return text(401, "missing or wrong bearer token\n");
        }
        Access::Open { hosts } if !host_allowed(req.host, hosts) => {
            return text(403, "the Host header does not name this endpoint: add the name to [http] allowed_hosts\n");
        }
        _ => {}
    }
    match (&p.view, req.path) {
        (Err(e), _) => text(500, format!("{e}\n")),
        (Ok(v), "/status") => reply(200, "application/json", v.status_json.clone()),
        (Ok(v), _) => reply(200, "text/plain; version=0.0.4", v.metrics.clone()),
    }
}

/// True when `header` is `Bearer TOKEN` with the right token. The two are compared as BLAKE3 hashes, whose
/// equality blake3 checks in constant time: neither the position of the first wrong byte nor the token's length
/// shows in the time an answer takes.
pub fn bearer_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(h) = header else { return false };
    let Some(given) = h.get(..7).filter(|s| s.eq_ignore_ascii_case(b"bearer ")).map(|_| h[7..].trim_ascii()) else {
        return false;
    };
    blake3::hash(given) == blake3::hash(token.as_bytes())
}

/// The host name of a `Host` header value (or a listen address): lowercase, without port, brackets or a trailing
/// dot. `None` when it is not text.
pub fn host_name(value: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let name = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next()?
    } else {
        match s.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => s,
        }
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether a request's `Host` may see the data when no token is set. A browser always sends `Host`, and a page
/// can only make it an address or a name that leads to it: an IP address means the page came from that address
/// itself (no rebinding), `localhost` cannot be re-pointed by anyone else, and other names must be listed. A
/// request without `Host` comes from no browser, so it is no rebinding either.
pub fn host_allowed(host: Option<&[u8]>, allowed: &[String]) -> bool {
    let Some(value) = host else { return true };
    let Some(name) = host_name(value) else { return false };
    if name.is_empty() {
        return false;
    }
    name.parse::<IpAddr>().is_ok() || name == "localhost" || allowed.contains(&name)
}

/// The warning for a listener reachable beyond this machine without a token (`None` when there is nothing to
/// say): anyone who can connect may then read job names, paths, sizes and errors.
pub fn exposure_warning(local: SocketAddr, token_set: bool) -> Option<String> {
    (!token_set && !local.ip().is_loopback()).then(|| {
        format!(
            "the status endpoint listens on {local} without [http] token: anyone who can reach it may read \
             /status and /metrics (job names, paths, sizes, errors); set [http] token = \"env:NAME\" or listen \
             on 127.0.0.1"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(access: Access) -> Published {
        let view = View { status_json: Bytes::from_static(b"{}"), metrics: Bytes::new(), health: Health::Healthy };
        Published { access, view: Ok(view), at: Instant::now(), stale_after: Duration::from_secs(60) }
    }

    fn get<'a>(path: &'a str, host: Option<&'a str>, auth: Option<&'a str>) -> Request<'a> {
        Request { method: "GET", path, host: host.map(str::as_bytes), authorization: auth.map(str::as_bytes) }
    }

    #[test]
    fn the_token_is_needed_for_data_only() {
        let p = published(Access::Token("s3cret".into()));
        let now = Instant::now();
        let code = |r: Request<'_>| respond(&r, Some(&p), now).code;
        assert_eq!(code(get("/status", None, None)), 401);
        assert_eq!(code(get("/status", None, Some("Bearer s3cre"))), 401);
        assert_eq!(code(get("/status", None, Some("Bearer s3cret2"))), 401);
        assert_eq!(code(get("/metrics", None, Some("Basic s3cret"))), 401);
        assert_eq!(code(get("/status", None, Some("Bearer s3cret"))), 200);
        assert_eq!(code(get("/status", None, Some("bearer  s3cret "))), 200);
        assert_eq!(code(get("/healthz", None, None)), 200);
        assert_eq!(code(get("/", Some("evil.example"), None)), 200);
        assert_eq!(code(get("/nope", None, None)), 404);
        assert_eq!(respond(&Request { method: "POST", ..get("/status", None, None) }, Some(&p), now).code, 405);
    }

    #[test]
    fn without_a_token_the_host_must_name_this_endpoint() {
        let p = published(Access::Open { hosts: vec!["backup.example.com".into()] });
        let now = Instant::now();
        let code = |host: Option<&str>| respond(&get("/status", host, None), Some(&p), now).code;
        for ok in [None, Some("127.0.0.1:8330"), Some("[::1]:8330"), Some("localhost:8330"), Some("LOCALHOST")] {
            assert_eq!(code(ok), 200, "{ok:?}");
        }
        assert_eq!(code(Some("Backup.Example.com.:443")), 200);
        assert_eq!(code(Some("10.1.2.3")), 200);
        for bad in ["evil.example:8330", "localhost.evil.example", "", "backup.example.com.evil"] {
            assert_eq!(code(Some(bad)), 403, "{bad:?}");
        }
        assert_eq!(respond(&get("/status", None, None), Some(&published(Access::Broken)), now).code, 500);
    }

    #[test]
    fn healthz_reports_a_stale_or_missing_status() {
        let now = Instant::now();
        assert_eq!(respond(&get("/healthz", None, None), None, now).code, 503);
        let mut p = published(Access::Broken);
        assert_eq!(respond(&get("/healthz", None, None), Some(&p), now).code, 200, "health needs no config");
        p.at = now - Duration::from_secs(61);
        let r = respond(&get("/healthz", None, None), Some(&p), now);
        assert_eq!(r.code, 503);
        assert!(String::from_utf8_lossy(&r.body).starts_with("stale"));
        p.at = now;
        p.view = Err("storage: boom at /secret/path".into());
        let r = respond(&get("/healthz", None, None), Some(&p), now);
        assert_eq!(r.code, 503);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"), "no details without authorization");
    }

    #[test]
    fn only_loopback_without_a_token_is_quiet() {
        assert!(exposure_warning("127.0.0.1:8330".parse().unwrap(), false).is_none());
        assert!(exposure_warning("[::1]:8330".parse().unwrap(), false).is_none());
        assert!(exposure_warning("0.0.0.0:8330".parse().unwrap(), false).is_some());
        assert!(exposure_warning("0.0.0.0:8330".parse().unwrap(), true).is_none());
    }
}
