//! The read-only HTTP endpoint of `serve` and `daemon --listen`: `/status` (JSON), `/metrics` (Prometheus),
//! `/healthz` and a dashboard page. The repository is opened once; each request brings the catalog up to date and
//! reads the config again, so edits show without a restart.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;

use super::status::{self, Health};
use crate::config::Config;
use crate::error::Result;
use crate::repo::session::Session;

/// What the endpoint needs from the command that runs it.
pub trait Host: Sync {
    /// Opens the repository and its catalog, as the command does.
    fn open(&self) -> Result<Session>;
    /// Reads the config file again.
    fn reload_config(&self) -> Result<Config>;
}

/// The dashboard: one self-contained page (no external scripts or fonts) that reads /status.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Binds the HTTP listener.
pub fn bind(addr: &str) -> Result<tiny_http::Server> {
    tiny_http::Server::http(addr).map_err(|e| crate::Error::InvalidInput(format!("cannot listen on {addr}: {e}")))
}

/// Answers requests until `stop` is set. Ages are judged at `now()`.
pub fn serve_loop(
    host: &dyn Host,
    server: &tiny_http::Server,
    stop: &AtomicBool,
    now: &(dyn Fn() -> Timestamp + Sync),
) -> Result<()> {
    let mut session = host.open()?;
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(mut request)) = server.recv_timeout(std::time::Duration::from_millis(250)) else { continue };
        let mut sink = Vec::new();
        let _ = request.as_reader().take(1 << 16).read_to_end(&mut sink);
        let response = respond(host, &mut session, &request, now());
        let _ = request.respond(response);
    }
    Ok(())
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn reply(code: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("valid header");
    tiny_http::Response::from_data(body.into()).with_status_code(code).with_header(header)
}

fn respond(host: &dyn Host, session: &mut Session, request: &tiny_http::Request, now: Timestamp) -> Response {
    if *request.method() != tiny_http::Method::Get {
        return reply(405, "text/plain", "read-only: only GET\n");
    }
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    // The dashboard page holds no data (it fetches /status with the token), so it is open, like /healthz.
    if path == "/" {
        return reply(200, "text/html; charset=utf-8", DASHBOARD);
    }
    // A broken config is told to the operator's log, not to the caller: parser messages quote the line, which may
    // hold a literal secret.
    let config = match host.reload_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gumvault: error: status endpoint: {e}");
            return reply(500, "text/plain", "the config file is invalid: see the log of gumvault serve/daemon\n");
        }
    };
    if path != "/healthz"
        && let Some(denied) = authorize(&config, request)
    {
        return denied;
    }
    if let Err(e) = session.catalog.sync(&session.repo) {
        return reply(500, "text/plain", format!("{e}\n"));
    }
    let st = match status::of_session(&config, session, false, now) {
        Ok(s) => s,
        Err(e) => return reply(500, "text/plain", format!("{e}\n")),
    };
    match path.as_str() {
        "/status" => reply(200, "application/json", serde_json::to_vec_pretty(&st).unwrap_or_default()),
        "/metrics" => reply(200, "text/plain; version=0.0.4", super::metrics::metrics(&st)),
        "/healthz" => {
            let code = if st.status == Health::Healthy { 200 } else { 503 };
            reply(code, "text/plain", format!("{}\n", st.status.as_str()))
        }
        _ => reply(404, "text/plain", "not found: try /, /status, /metrics, /healthz\n"),
    }
}

/// `None` when the request may see the data: no `[http] token`, or the right bearer token.
fn authorize(config: &Config, request: &tiny_http::Request) -> Option<Response> {
    let token = config.http.token.as_ref()?;
    let expected = match token.resolve() {
        Ok(t) => format!("Bearer {t}"),
        Err(e) => {
            eprintln!("gumvault: error: status endpoint: [http] token: {e}");
            return Some(reply(500, "text/plain", "the [http] token cannot be read: see the log\n"));
        }
    };
    let given = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_string());
    (given.as_deref() != Some(expected.as_str())).then(|| reply(401, "text/plain", "missing or wrong bearer token\n"))
}
