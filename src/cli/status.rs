//! `gumvault status` and `gumvault serve`: job health as text, JSON, Prometheus metrics and a dashboard.

use std::io::Read;

use clap::Args;
use jiff::Timestamp;

use super::{GlobalArgs, Session};
use crate::config::Config;
use crate::daemon::status::{self, Health, Status};
use crate::exit;

#[derive(Args, Debug)]
#[command(after_help = "Per job: the newest backup (time, age, snapshot, size), health, the next scheduled backup,
the last check and test restore. Health is `warning` when the newest backup is older than warning_after (7h),
`critical` after critical_after (8h) or when the last backup run failed. Exit codes: 0 healthy, 8 warning,
9 critical — usable from cron or a load balancer check. With several regions, each region's health too.")]
pub struct StatusArgs {
    /// Also list every region (reachable, objects, what it lacks); slower with many objects
    #[arg(long = "with-regions")]
    pub with_regions: bool,
}

/// The status of every job of the config, now.
pub(super) fn compute(config: &Config, s: &Session, with_regions: bool, now: Timestamp) -> anyhow::Result<Status> {
    let regions =
        if with_regions || s.repo.region_count() > 1 { Some(crate::ops::sync::health(&s.repo)?) } else { None };
    Ok(status::compute(config, &s.catalog, now, regions)?)
}

pub fn run(g: &GlobalArgs, a: &StatusArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let s = g.open()?;
    let st = compute(&config, &s, a.with_regions, crate::time::now())?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        let tz = jiff::tz::TimeZone::system();
        println!("overall: {}", st.status.as_str().to_uppercase());
        for j in &st.jobs {
            println!("job {}: {}", j.name, j.status.as_str().to_uppercase());
            match &j.last_backup {
                Some(b) => println!(
                    "  last backup  {} ({} ago), snapshot {}, {}",
                    super::format::local_time(&b.time),
                    super::format::duration(b.age_seconds as f64),
                    &b.snapshot[..8],
                    super::format::bytes(b.size)
                ),
                None => println!("  last backup  none"),
            }
            if let Some(n) = j.next_backup {
                println!("  next backup  {}", n.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M"));
            }
            for (label, run) in [("last check", &j.last_check), ("test restore", &j.last_test_restore)] {
                if let Some(r) = run {
                    println!(
                        "  {label:<12} {} {}",
                        super::format::local_time(&r.time),
                        if r.ok {
                            "passed".to_string()
                        } else {
                            format!("FAILED: {}", r.error.as_deref().unwrap_or(""))
                        }
                    );
                }
            }
            for why in &j.reasons {
                println!("  ! {why}");
            }
        }
        if let Some(regions) = &st.regions {
            for r in regions {
                println!(
                    "region {}: {}, {} objects, {} missing",
                    r.name,
                    if r.reachable { "reachable" } else { "UNREACHABLE" },
                    r.objects,
                    r.missing
                );
            }
        }
    }
    Ok(health_code(st.status))
}

/// The exit code of a health.
pub(super) fn health_code(h: Health) -> i32 {
    match h {
        Health::Healthy => exit::OK,
        Health::Warning => exit::WARNING,
        Health::Critical => exit::CRITICAL,
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Endpoints (read-only): GET /status (the JSON of `status --json`), GET /metrics (Prometheus
text format), GET /healthz (200 when healthy, 503 when not; never needs the token), GET / (a dashboard).
With `[http] token = \"env:NAME\"` in the config, /status and /metrics need `Authorization: Bearer TOKEN`; open the
dashboard as http://ADDR/#token=TOKEN (the fragment stays in the browser).")]
pub struct ServeArgs {
    /// Address to listen on (default: [http] listen of the config, else 127.0.0.1:8330)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn serve(g: &GlobalArgs, a: &ServeArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let addr = a.listen.clone().or(config.http.listen.clone()).unwrap_or_else(|| "127.0.0.1:8330".into());
    let server = bind(&addr)?;
    eprintln!("gumvault: serving status on http://{addr}/");
    let stop = std::sync::atomic::AtomicBool::new(false);
    serve_loop(g, &server, &stop, &crate::time::now)
}

/// Binds the HTTP listener.
pub(super) fn bind(addr: &str) -> anyhow::Result<tiny_http::Server> {
    tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Answers requests until `stop` is set. The repository is opened once; each request brings the catalog up to
/// date and reads the config again (so edits show without a restart). Ages are judged at `now()`.
pub(super) fn serve_loop(
    g: &GlobalArgs,
    server: &tiny_http::Server,
    stop: &std::sync::atomic::AtomicBool,
    now: &(dyn Fn() -> Timestamp + Sync),
) -> anyhow::Result<i32> {
    let mut session = g.open()?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(Some(mut request)) = server.recv_timeout(std::time::Duration::from_millis(250)) else { continue };
        let mut sink = Vec::new();
        let _ = request.as_reader().take(1 << 16).read_to_end(&mut sink);
        let response = respond(g, &mut session, &request, now());
        let _ = request.respond(response);
    }
    Ok(exit::OK)
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn reply(code: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("valid header");
    tiny_http::Response::from_data(body.into()).with_status_code(code).with_header(header)
}

fn respond(g: &GlobalArgs, session: &mut Session, request: &tiny_http::Request, now: Timestamp) -> Response {
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
    let config = match g.require_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gumvault: error: status endpoint: {e:#}");
            return reply(500, "text/plain", "the config file is invalid: see the log of gumvault serve/daemon\n");
        }
    };
    if path != "/healthz"
        && let Some(token) = &config.http.token
    {
        let expected = match token.resolve() {
            Ok(t) => format!("Bearer {t}"),
            Err(e) => {
                eprintln!("gumvault: error: status endpoint: [http] token: {e}");
                return reply(500, "text/plain", "the [http] token cannot be read: see the log\n");
            }
        };
        let given =
            request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_string());
        if given.as_deref() != Some(expected.as_str()) {
            return reply(401, "text/plain", "missing or wrong bearer token\n");
        }
    }
    if let Err(e) = session.catalog.sync(&session.repo) {
        return reply(500, "text/plain", format!("{e}\n"));
    }
    let st = match compute(&config, session, false, now) {
        Ok(s) => s,
        Err(e) => return reply(500, "text/plain", format!("{e:#}\n")),
    };
    match path.as_str() {
        "/status" => reply(200, "application/json", serde_json::to_vec_pretty(&st).unwrap_or_default()),
        "/metrics" => reply(200, "text/plain; version=0.0.4", status::metrics(&st)),
        "/healthz" => {
            let code = if st.status == Health::Healthy { 200 } else { 503 };
            reply(code, "text/plain", format!("{}\n", st.status.as_str()))
        }
        _ => reply(404, "text/plain", "not found: try /, /status, /metrics, /healthz\n"),
    }
}

/// The dashboard: one self-contained page (no external scripts or fonts) that reads /status.
const DASHBOARD: &str = include_str!("dashboard.html");
