//! `gumvault daemon`, `gumvault schedule` and `gumvault alert test`: the flags, the log lines, and the calls into
//! [`crate::daemon`], which does the work.

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use serde_json::json;

use super::context::Context;
use crate::daemon::alerts::{self, Alert};
use crate::daemon::child::ChildCommand;
use crate::daemon::clock::{self, Clock, STOP};
use crate::daemon::runner::Daemon;
use crate::daemon::schedule::{Role, Timetable};
use crate::daemon::{endpoint, export, http};
use crate::exit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
#[command(after_help = "Runs each job's backup on its schedule (default every 6 hours) followed by its retention
(default keep_within = \"30d\"), a weekly prune, a daily check of a seventh of the data, and the test restore
(monthly) — one task at a time per repository. A failed task is retried after 5 and 10 minutes, then alerted once;
when it succeeds again, a recovery alert follows. Slots missed while the machine was off are caught up once at
start. SIGTERM or SIGINT (Ctrl-C) to the daemon lets the running task finish, then exits; a task killed too (as
systemd's default KillMode=control-group does: use KillMode=mixed to let it finish) is logged as interrupted, not
alerted, and caught up at the next start. One log line per run.

Examples:
  gumvault --config /etc/gumvault.toml daemon --listen 127.0.0.1:8330
  gumvault --config /etc/gumvault.toml daemon --log-format json")]
pub(crate) struct DaemonArgs {
    /// Also serve /status, /metrics, /healthz and the dashboard on this address
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// One line per run: text or JSON
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Which tasks to run: all; backup (backups, checks, test restores, no retention, and `lock extend` instead of
    /// prune: for a machine whose credentials may not delete); maintenance (each job's retention and prune: for
    /// the machine that may)
    #[arg(long, value_enum, default_value = "all")]
    pub role: DaemonRole,
    /// Testing: run on simulated time from now (or --simulate-from) until this time, without sleeping
    #[arg(long, value_name = "TIME", hide = true)]
    pub simulate_until: Option<String>,
    /// Testing: where simulated time starts
    #[arg(long, value_name = "TIME", hide = true, requires = "simulate_until")]
    pub simulate_from: Option<String>,
}

/// `--role`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DaemonRole {
    All,
    Backup,
    Maintenance,
}

impl DaemonRole {
    fn role(self) -> Role {
        match self {
            DaemonRole::All => Role::All,
            DaemonRole::Backup => Role::Backup,
            DaemonRole::Maintenance => Role::Maintenance,
        }
    }
}

pub(crate) fn run(g: &Context, a: &DaemonArgs) -> anyhow::Result<i32> {
    let config_path =
        g.config_path().ok_or_else(|| anyhow::anyhow!("the daemon needs --config FILE (or GUMVAULT_CONFIG)"))?;
    let config = g.require_config()?;
    if config.jobs.is_empty() {
        anyhow::bail!("{} defines no jobs: nothing to schedule", config_path.display());
    }
    let clock = clock_of(a)?;
    clock::install_signal_handlers();
    let session = g.open()?;
    let listener = match a.listen.clone().or(config.http.listen.clone()) {
        Some(addr) => Some((http::bind(&addr)?, addr)),
        None => None,
    };
    if let Some(warning) =
        listener.as_ref().and_then(|(l, _)| endpoint::exposure_warning(l.local_addr(), config.http.token.is_some()))
    {
        eprintln!("gumvault: warning: {warning}");
    }
    let log = |line: serde_json::Value| print_log(a.log_format, &line);
    let now = clock.now();
    // The last run that counts for catch-up: one interrupted by a shutdown did not do the slot's work.
    let mut table = Timetable::new(config, now, jiff::tz::TimeZone::system(), |job, kind| {
        session.catalog.last_completed_run(job, kind.as_str()).ok().flatten().map(|r| r.started)
    });
    table.entries.retain(|e| a.role.role().runs(e.kind));
    log(json!({ "time": now.to_string(), "event": "start", "job": "-", "outcome": "ok",
                "message": format!("{} jobs, {} tasks", config.jobs.len(), table.entries.len()) }));
    let child = ChildCommand {
        exe: std::env::current_exe().unwrap_or_else(|_| "gumvault".into()),
        config: config_path.to_path_buf(),
        cache_dir: g.args.cache_dir.clone(),
    };
    let archives = || crate::daemon::status::archives_of(&session.repo, &session.cache_dir, &session.url);
    let mut daemon = Daemon::new(config, child, clock, session.catalog, &log, &archives);
    daemon.role = a.role.role();
    std::thread::scope(|scope| {
        if let Some((server, addr)) = listener {
            log(json!({ "time": now.to_string(), "event": "listen", "job": "-", "outcome": "ok",
                        "message": format!("http://{addr}/") }));
            scope.spawn(move || {
                // The daemon's tasks record their runs in the catalog the endpoint reads: no sync needed.
                if let Err(e) = http::serve(g, server, false, &STOP, &clock::daemon_now) {
                    eprintln!("gumvault: error: status endpoint: {e}");
                }
            });
        }
        daemon.run(&mut table);
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    log(json!({ "time": daemon.clock.now().to_string(), "event": "stop", "job": "-", "outcome": "ok" }));
    Ok(exit::OK)
}

/// Real time, or the simulated time of `--simulate-until` (tests).
fn clock_of(a: &DaemonArgs) -> anyhow::Result<Clock> {
    let tz = jiff::tz::TimeZone::system();
    let parse = |s: &str| crate::time::parse_time(s, crate::time::now(), &tz);
    Ok(match &a.simulate_until {
        Some(until) => {
            let from: Timestamp = a.simulate_from.as_deref().map(parse).transpose()?.unwrap_or_else(crate::time::now);
            Clock::simulated(from, parse(until)?)
        }
        None => Clock::real(),
    })
}

/// One log line per event, as JSON or as text.
fn print_log(format: LogFormat, line: &serde_json::Value) {
    match format {
        LogFormat::Json => println!("{line}"),
        LogFormat::Text => {
            let get = |k: &str| line.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let mut text = format!("{} {} {} {}", get("time"), get("event"), get("job"), get("outcome"));
            for k in ["snapshot", "duration", "error", "message", "next"] {
                if let Some(v) = line.get(k).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                    text.push_str(&format!(" {k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
                }
            }
            println!("{text}");
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "For people who prefer the system's scheduler to `gumvault daemon`: prints crontab lines, or
a systemd service and timer per job (install them under /etc/systemd/system and `systemctl enable --now` the timers).")]
pub(crate) struct ScheduleArgs {
    /// What to print
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub print: ScheduleFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScheduleFormat {
    Cron,
    Systemd,
}

pub(crate) fn schedule(g: &Context, a: &ScheduleArgs) -> anyhow::Result<i32> {
    let config_path = g.config_path().ok_or_else(|| anyhow::anyhow!("needs --config FILE (or GUMVAULT_CONFIG)"))?;
    let config = g.require_config()?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "gumvault".into());
    match a.print {
        ScheduleFormat::Cron => print!("{}", export::crontab(config, &exe, config_path)),
        ScheduleFormat::Systemd => print!("{}", export::systemd_units(config, &exe, config_path)?),
    }
    Ok(exit::OK)
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum AlertCommand {
    /// Send a test alert to every channel of [alerts]
    Test,
}

pub(crate) fn alert_cmd(g: &Context, c: &AlertCommand) -> anyhow::Result<i32> {
    let AlertCommand::Test = c;
    let config = g.require_config()?;
    if !alerts::any_channel(&config.alerts) {
        anyhow::bail!("no alert channel configured: add webhooks, command or [alerts.email] to [alerts]");
    }
    let a =
        Alert::new("test", "-", "warning", "a test alert from gumvault: alerts reach you".into(), crate::time::now());
    let failures = alerts::send(&config.alerts, &config.child_env(), &a);
    for f in &failures {
        eprintln!("gumvault: error: {f}");
    }
    if failures.is_empty() {
        println!("test alert sent");
        Ok(exit::OK)
    } else {
        Ok(exit::ERROR)
    }
}
