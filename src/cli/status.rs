//! `gumvault status` and `gumvault serve`: job health as text, JSON, Prometheus metrics and a dashboard.

use clap::Args;

use super::context::Context;
use crate::daemon::status::{self, Health};
use crate::daemon::{endpoint, http};
use crate::exit;

#[derive(Args, Debug)]
#[command(after_help = "Per job: the newest backup (time, age, snapshot, size), health, the next scheduled backup,
the last check and test restore. Health is `warning` when the newest backup is older than warning_after (7h) or
the last backup run could not read some inputs (each is listed), `critical` after critical_after (8h) or when the
last backup run failed, or the recovery point is older than the job's rpo, or WAL archiving fails; `warning`
when the last test restore took longer than the job's rto. The recovery point of a source is its newest
snapshot, or for a postgres-physical source its newest archived WAL; a job's is its oldest source's.
Exit codes: 0 healthy, 8 warning,
9 critical — usable from cron or a load balancer check. With several regions, each region's health too.")]
pub(crate) struct StatusArgs {
    /// Also list every region (reachable, objects, what it lacks); slower with many objects
    #[arg(long = "with-regions")]
    pub with_regions: bool,
}

pub(crate) fn run(g: &Context, a: &StatusArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let s = g.open()?;
    let st = status::of_session(config, &s, a.with_regions, crate::time::now())?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        println!("overall: {}", st.status.as_str().to_uppercase());
        for j in &st.jobs {
            print_job(j);
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

/// One job's status as text.
fn print_job(j: &status::JobStatus) {
    println!("job {}: {}", j.name, j.status.as_str().to_uppercase());
    match &j.last_backup {
        Some(b) => println!(
            "  last backup  {} ({} ago), snapshot {}, {}",
            super::format::local_time(&b.point.time),
            super::format::duration(b.age_seconds as f64),
            &b.point.snapshot[..8],
            super::format::bytes(b.point.size)
        ),
        None => println!("  last backup  none"),
    }
    if let Some(n) = j.next_backup {
        println!("  next backup  {}", n.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M"));
    }
    for (label, run) in [("last check", &j.last_check), ("test restore", &j.last_test_restore)] {
        if let Some(r) = run {
            let outcome =
                if r.ok { "passed".to_string() } else { format!("FAILED: {}", r.error.as_deref().unwrap_or("")) };
            let rto = r.detail.get("measured_rto_secs").and_then(|v| v.as_f64());
            let rto = rto.map(|s| format!(" (measured RTO {})", super::format::duration(s))).unwrap_or_default();
            println!("  {label:<12} {} {outcome}{rto}", super::format::local_time(&r.time));
        }
    }
    print_recovery(&j.recovery);
    for why in &j.reasons {
        println!("  ! {why}");
    }
    if let Some(r) = j.last_run.as_ref().filter(|r| r.incomplete) {
        for p in &r.unreadable {
            println!("    unreadable: {}", super::format::escaped(p.as_bytes()));
        }
        if r.unreadable_count > r.unreadable.len() as u64 {
            println!("    … and {} more", r.unreadable_count - r.unreadable.len() as u64);
        }
    }
}

/// The recovery point (the job's and, with several sources, each source's) against `rpo`, and the measured RTO
/// against `rto`.
fn print_recovery(r: &crate::daemon::recovery::Recovery) {
    use crate::daemon::recovery::human;
    let target = |t: Option<i64>, word: &str| t.map(|s| format!(" ({word} {})", human(s))).unwrap_or_default();
    match &r.recovery_point {
        Some(p) => println!(
            "  recovery pt  {} ({} ago, {} of {}){}",
            super::format::local_time(&p.time),
            human(p.age_seconds),
            p.kind,
            p.source,
            target(r.rpo_seconds, "rpo")
        ),
        None => println!("  recovery pt  none{}", target(r.rpo_seconds, "rpo")),
    }
    if r.sources.iter().any(|s| s.kind == "postgres-physical") || r.sources.len() > 1 {
        for s in &r.sources {
            let at = s.recovery_point.as_ref().map_or("none".to_string(), |p| {
                format!("{} ({} ago, {})", super::format::local_time(&p.time), human(p.age_seconds), p.kind)
            });
            println!("    {:<10} {at}", s.name);
        }
    }
    if let Some(took) = r.measured_rto_seconds {
        println!("  measured rto {}{}", human(took as i64), target(r.rto_seconds, "rto"));
    }
}

/// The exit code of a health.
fn health_code(h: Health) -> i32 {
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
dashboard as http://ADDR/#token=TOKEN (the fragment stays in the browser). Without a token, their Host header must
be an IP address, localhost, the listen name or one of [http] allowed_hosts. Requests never touch the repository:
the status is recomputed in the background every [http] refresh (default 60s).")]
pub(crate) struct ServeArgs {
    /// Address to listen on (default: [http] listen of the config, else 127.0.0.1:8330)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub(crate) fn serve(g: &Context, a: &ServeArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let addr = a.listen.clone().or(config.http.listen.clone()).unwrap_or_else(|| "127.0.0.1:8330".into());
    let listener = http::bind(&addr)?;
    if let Some(warning) = endpoint::exposure_warning(listener.local_addr(), config.http.token.is_some()) {
        eprintln!("gumvault: warning: {warning}");
    }
    eprintln!("gumvault: serving status on http://{addr}/");
    let stop = std::sync::atomic::AtomicBool::new(false);
    http::serve(g, listener, true, &stop, &crate::time::now)?;
    Ok(exit::OK)
}
