//! `gumvault daemon`: runs every job's backups and maintenance on their schedules, records each run, sends
//! alerts, and (with --listen) serves the status endpoint. Each task runs as a child `gumvault` process, so a
//! crash or a leak in one run cannot take the daemon down, and the daemon's own memory stays flat.

use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::GlobalArgs;
use crate::config::Config;
use crate::daemon::alerts::{self, Alert};
use crate::daemon::schedule::{AfterRun, TaskKind, Timetable};
use crate::exit;
use crate::repo::catalog::RunRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
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
pub struct DaemonArgs {
    /// Also serve /status, /metrics, /healthz and the dashboard on this address
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// One line per run: text or JSON
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Testing: run on simulated time from now (or --simulate-from) until this time, without sleeping
    #[arg(long, value_name = "TIME", hide = true)]
    pub simulate_until: Option<String>,
    /// Testing: where simulated time starts
    #[arg(long, value_name = "TIME", hide = true, requires = "simulate_until")]
    pub simulate_from: Option<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// The simulated now (Unix seconds) for the status endpoint's thread; `i64::MIN` when time is real.
static SIMULATED_NOW: AtomicI64 = AtomicI64::new(i64::MIN);

/// Now as the daemon sees it: the endpoint judges backup ages against the same clock as the scheduler.
fn daemon_now() -> Timestamp {
    match SIMULATED_NOW.load(Ordering::Relaxed) {
        i64::MIN => crate::time::now(),
        secs => Timestamp::from_second(secs).unwrap_or_else(|_| crate::time::now()),
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Simulated or real time.
struct Clock {
    /// Simulated now and the end of the simulation.
    simulated: Option<(Timestamp, Timestamp)>,
}

impl Clock {
    fn now(&self) -> Timestamp {
        match self.simulated {
            Some((now, _)) => now,
            None => crate::time::now(),
        }
    }

    /// Makes a simulated now visible to [`daemon_now`].
    fn publish(&self) {
        if let Some((now, _)) = self.simulated {
            SIMULATED_NOW.store(now.as_second(), Ordering::Relaxed);
        }
    }

    /// Waits until `t` (or jumps there); false when the daemon should stop instead.
    fn wait_until(&mut self, t: Timestamp) -> bool {
        match &mut self.simulated {
            Some((now, end)) => {
                if t > *end || STOP.load(Ordering::Relaxed) {
                    return false;
                }
                *now = (*now).max(t);
                self.publish();
                true
            }
            None => {
                while crate::time::now() < t {
                    if STOP.load(Ordering::Relaxed) {
                        return false;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                !STOP.load(Ordering::Relaxed)
            }
        }
    }

    /// Advances simulated time by what a task really took.
    fn advance(&mut self, d: std::time::Duration) {
        if let Some((now, _)) = &mut self.simulated {
            *now = now.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO)).unwrap_or(*now);
        }
        self.publish();
    }

    /// `GUMVAULT_TEST_CLOCK_OFFSET` for children, so their snapshots carry simulated times.
    fn child_offset(&self) -> Option<String> {
        // Rounded up to whole seconds, so a child never sees a time before the slot it runs for.
        self.simulated.map(|(now, _)| {
            let d = now.duration_since(Timestamp::now());
            format!("{}s", d.as_secs() + i64::from(d.subsec_nanos() > 0))
        })
    }
}

/// The outcome of one child run.
struct ChildRun {
    ok: bool,
    code: i32,
    /// Ended by a signal rather than by exiting: with the daemon stopping, the task was interrupted, not failed.
    signalled: bool,
    stdout: serde_json::Value,
    error: Option<String>,
    elapsed: std::time::Duration,
}

impl ChildRun {
    /// Killed by a signal while the daemon is stopping (e.g. `systemctl stop` signals the whole unit): not a
    /// failure to alert on or retry. A task that exits with an error code failed, stopping or not.
    fn interrupted(&self) -> bool {
        !self.ok && self.signalled && STOP.load(Ordering::SeqCst)
    }
}

pub fn run(g: &GlobalArgs, a: &DaemonArgs) -> anyhow::Result<i32> {
    let config_path =
        g.config.clone().ok_or_else(|| anyhow::anyhow!("the daemon needs --config FILE (or GUMVAULT_CONFIG)"))?;
    let config = g.require_config()?;
    if config.jobs.is_empty() {
        anyhow::bail!("{} defines no jobs: nothing to schedule", config_path.display());
    }
    let tz = jiff::tz::TimeZone::system();
    let parse = |s: &str| crate::time::parse_time(s, crate::time::now(), &tz);
    let mut clock = Clock {
        simulated: match &a.simulate_until {
            Some(until) => {
                let from = a.simulate_from.as_deref().map(parse).transpose()?.unwrap_or_else(crate::time::now);
                Some((from, parse(until)?))
            }
            None => None,
        },
    };
    clock.publish();
    install_signal_handlers();
    let session = g.open()?;
    let listener = match a.listen.clone().or(config.http.listen.clone()) {
        Some(addr) => Some((super::status::bind(&addr)?, addr)),
        None => None,
    };
    let now = clock.now();
    // The last run that counts for catch-up: one interrupted by a shutdown did not do the slot's work.
    let mut table = Timetable::new(&config, now, tz.clone(), |job, kind| {
        session.catalog.last_completed_run(job, kind.as_str()).ok().flatten().map(|r| r.started)
    });
    let log = |line: serde_json::Value| match a.log_format {
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
    };
    log(json!({ "time": now.to_string(), "event": "start", "job": "-", "outcome": "ok",
                "message": format!("{} jobs, {} tasks", config.jobs.len(), table.entries.len()) }));
    // Conditions already alerted survive a restart, so a restart neither repeats an alert nor loses a recovery.
    let mut alerting: HashSet<(String, String)> = session
        .catalog
        .meta(ALERTS_KEY)?
        .and_then(|v| serde_json::from_str::<Vec<(String, String)>>(&v).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    check_staleness(&config, &session.catalog, now, &mut alerting, &log);
    save_alerting(&session.catalog, &alerting);
    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        if let Some((server, addr)) = &listener {
            log(
                json!({ "time": now.to_string(), "event": "listen", "job": "-", "outcome": "ok", "message": format!("http://{addr}/") }),
            );
            scope.spawn(move || {
                if let Err(e) = super::status::serve_loop(g, server, &STOP, &daemon_now) {
                    eprintln!("gumvault: error: status endpoint: {e:#}");
                }
            });
        }
        let mut catalog = session.catalog;
        while let Some((i, due)) = table.next_due() {
            if !clock.wait_until(due) {
                break;
            }
            let entry = table.entries[i].clone();
            let started = clock.now();
            let child = run_task(g, &config_path, &clock, &entry.job, entry.kind, &config);
            clock.advance(child.elapsed);
            let finished = clock.now();
            // A task killed along with the daemon (e.g. systemd stopping the whole unit) is not a failure to alert
            // on or retry: it is logged, and the next start catches the slot up.
            let interrupted = child.interrupted();
            record(&mut catalog, &entry.job, entry.kind.as_str(), started, finished, &child, interrupted);
            if interrupted {
                log(json!({
                    "time": started.to_string(), "event": entry.kind.as_str(), "job": entry.job,
                    "outcome": "interrupted", "exit_code": child.code, "error": child.error,
                }));
                break;
            }
            let after = table.completed(i, child.ok, finished);
            log(json!({
                "time": started.to_string(), "event": entry.kind.as_str(), "job": entry.job,
                "outcome": if child.ok { "ok" } else { "failed" }, "exit_code": child.code,
                "duration": format!("{:.1}s", child.elapsed.as_secs_f64()),
                "snapshot": child.stdout.get("short_id"), "error": child.error,
                "next": match after { AfterRun::WillRetry(t) => format!("retry at {t}"), _ => String::new() },
            }));
            // Retention after every successful backup.
            if entry.kind == TaskKind::Backup && child.ok {
                let started = clock.now();
                let forget = run_child(g, &config_path, &clock, &forget_args(&config, &entry.job));
                clock.advance(forget.elapsed);
                let interrupted = forget.interrupted();
                record(&mut catalog, &entry.job, "forget", started, clock.now(), &forget, interrupted);
                let outcome = match (forget.ok, interrupted) {
                    (true, _) => "ok",
                    (false, true) => "interrupted",
                    (false, false) => "failed",
                };
                log(json!({ "time": started.to_string(), "event": "forget", "job": entry.job,
                            "outcome": outcome, "error": forget.error }));
                if interrupted {
                    break;
                }
            }
            // Alerts: one per condition until it clears.
            let condition = format!("{}_failed", entry.kind.as_str().replace('-', "_"));
            let key = (entry.job.clone(), condition.clone());
            match after {
                AfterRun::GaveUp(failures) if !alerting.contains(&key) => {
                    let message = format!(
                        "{} of job {} failed {failures} times in a row: {}",
                        entry.kind.as_str(),
                        entry.job,
                        child.error.as_deref().unwrap_or("see the daemon log")
                    );
                    alert(&config, &log, Alert::new(&condition, &entry.job, "critical", message, finished));
                    alerting.insert(key);
                }
                AfterRun::Succeeded if alerting.remove(&key) => {
                    let message = format!("{} of job {} succeeded again", entry.kind.as_str(), entry.job);
                    alert(&config, &log, Alert::new("recovered", &entry.job, "healthy", message, finished));
                }
                _ => {}
            }
            // Stale backups, whatever ran.
            check_staleness(&config, &catalog, finished, &mut alerting, &log);
            save_alerting(&catalog, &alerting);
        }
        STOP.store(true, Ordering::SeqCst);
        Ok(())
    });
    log(json!({ "time": clock.now().to_string(), "event": "stop", "job": "-", "outcome": "ok" }));
    result?;
    Ok(exit::OK)
}

/// Catalog key of the conditions currently alerted.
const ALERTS_KEY: &str = "alerts_active";

fn save_alerting(catalog: &crate::repo::catalog::Catalog, alerting: &HashSet<(String, String)>) {
    let mut v: Vec<&(String, String)> = alerting.iter().collect();
    v.sort();
    if let Ok(text) = serde_json::to_string(&v) {
        let _ = catalog.set_meta(ALERTS_KEY, Some(&text));
    }
}

/// Alerts once when a job's newest backup is older than critical_after; clears when it is fresh again.
fn check_staleness(
    config: &Config,
    catalog: &crate::repo::catalog::Catalog,
    now: Timestamp,
    alerting: &mut HashSet<(String, String)>,
    log: &impl Fn(serde_json::Value),
) {
    let Ok(snaps) = catalog.snapshots() else { return };
    for (name, job) in &config.jobs {
        let newest =
            snaps.iter().filter(|s| s.snapshot.job.as_deref() == Some(name.as_str())).map(|s| s.snapshot.time).max();
        let key = (name.clone(), "backup_stale".to_string());
        let stale = newest.is_some_and(|t| now.duration_since(t) > job.critical_after.0);
        if stale && !alerting.contains(&key) {
            let age = now.duration_since(newest.expect("stale implies a backup"));
            let message = format!(
                "the newest backup of job {name} is {}h old (threshold {}h)",
                age.as_hours(),
                job.critical_after.0.as_hours()
            );
            alert(config, log, Alert::new("backup_stale", name, "critical", message, now));
            alerting.insert(key);
        } else if !stale && newest.is_some() && alerting.remove(&key) {
            alert(
                config,
                log,
                Alert::new("recovered", name, "healthy", format!("job {name} has a fresh backup again"), now),
            );
        }
    }
}

fn alert(config: &Config, log: &impl Fn(serde_json::Value), a: Alert) {
    let failures = alerts::send(&config.alerts, &a);
    log(json!({ "time": a.time.to_string(), "event": "alert", "job": a.job, "outcome": a.kind,
                "message": a.message, "error": if failures.is_empty() { None } else { Some(failures.join("; ")) } }));
}

fn forget_args(config: &Config, job: &str) -> Vec<String> {
    // A prune or forget killed with an earlier daemon leaves its lease until it expires: wait that out.
    let mut args = vec!["forget".to_string(), "--tag".to_string(), job.to_string()];
    if let Some(j) = config.jobs.get(job) {
        args.extend(j.retention.forget_args());
    }
    args.extend(["--retry-lock".into(), "20m".into(), "--json".into()]);
    args
}

fn task_args(config: &Config, job: &str, kind: TaskKind) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match kind {
        TaskKind::Backup => s(&["run", job, "--json"]),
        TaskKind::Prune => s(&["prune", "--retry-lock", "20m", "--json"]),
        TaskKind::Check => {
            let subset =
                config.jobs.get(job).map(|j| j.check.read_data_subset.clone()).unwrap_or_else(|| "auto".into());
            if subset == "all" {
                s(&["check", "--read-data", "--json"])
            } else {
                s(&["check", "--read-data-subset", &subset, "--json"])
            }
        }
        TaskKind::TestRestore => s(&["test-restore", job, "--json"]),
    }
}

fn run_task(
    g: &GlobalArgs,
    config_path: &std::path::Path,
    clock: &Clock,
    job: &str,
    kind: TaskKind,
    config: &Config,
) -> ChildRun {
    run_child(g, config_path, clock, &task_args(config, job, kind))
}

/// Runs `gumvault --config PATH ARGS` and collects its JSON output and the tail of its errors.
fn run_child(g: &GlobalArgs, config_path: &std::path::Path, clock: &Clock, args: &[String]) -> ChildRun {
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|_| "gumvault".into());
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(config_path).arg("--quiet").args(args);
    if let Some(dir) = &g.cache_dir {
        cmd.arg("--cache-dir").arg(dir);
    }
    cmd.env("GUMVAULT_RECORD_RUNS", "0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group: Ctrl-C in the daemon's terminal reaches the daemon only, which lets the task finish.
    // If the daemon itself dies (SIGKILL, a closed terminal), the task gets SIGTERM instead of running on orphaned.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    if let Some(offset) = clock.child_offset() {
        cmd.env("GUMVAULT_TEST_CLOCK_OFFSET", offset);
    }
    let out = match cmd.spawn() {
        Ok(mut child) => {
            // Read stderr on a thread so neither pipe can fill up and block the child.
            let mut err_pipe = child.stderr.take().expect("stderr piped");
            let errs = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = err_pipe.read_to_end(&mut v);
                v
            });
            let mut stdout = Vec::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_end(&mut stdout);
            }
            let status = child.wait();
            let stderr = errs.join().unwrap_or_default();
            let signalled = status.as_ref().is_ok_and(|s| std::os::unix::process::ExitStatusExt::signal(s).is_some());
            (status.ok().and_then(|s| s.code()).unwrap_or(-1), signalled, stdout, stderr)
        }
        Err(e) => (-1, false, Vec::new(), format!("cannot start gumvault: {e}").into_bytes()),
    };
    let (code, signalled, stdout, stderr) = out;
    let stdout: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or(serde_json::Value::Null);
    let text = String::from_utf8_lossy(&stderr);
    let error_lines: Vec<&str> = text.lines().filter(|l| l.contains("error")).collect();
    let error =
        if error_lines.is_empty() { text.lines().last().map(str::to_string) } else { Some(error_lines.join(" | ")) };
    let ok = code == exit::OK || code == exit::DEGRADED;
    ChildRun {
        ok,
        code,
        signalled,
        stdout,
        error: if ok { None } else { error.or(Some(format!("exit code {code}"))) },
        elapsed: started.elapsed(),
    }
}

fn record(
    catalog: &mut crate::repo::catalog::Catalog,
    job: &str,
    kind: &str,
    started: Timestamp,
    finished: Timestamp,
    child: &ChildRun,
    interrupted: bool,
) {
    let snapshot = child.stdout.get("snapshot_id").and_then(|v| v.as_str()).and_then(crate::format::id::Id::from_hex);
    let bytes = child.stdout.pointer("/summary/bytes_added").and_then(|v| v.as_u64()).unwrap_or(0);
    let record = RunRecord {
        job: job.into(),
        kind: kind.into(),
        started,
        finished,
        ok: child.ok,
        snapshot,
        bytes,
        error: child.error.clone(),
        detail: json!({ "exit_code": child.code, "interrupted": interrupted }),
    };
    if let Err(e) = catalog.record_run(&record) {
        eprintln!("gumvault: warning: could not record the run: {e}");
    }
}

#[derive(Args, Debug)]
#[command(after_help = "For people who prefer the system's scheduler to `gumvault daemon`: prints crontab lines, or
a systemd service and timer per job (install them under /etc/systemd/system and `systemctl enable --now` the timers).")]
pub struct ScheduleArgs {
    /// What to print
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub print: ScheduleFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleFormat {
    Cron,
    Systemd,
}

pub fn schedule(g: &GlobalArgs, a: &ScheduleArgs) -> anyhow::Result<i32> {
    let config_path = g.config.clone().ok_or_else(|| anyhow::anyhow!("needs --config FILE (or GUMVAULT_CONFIG)"))?;
    let config = g.require_config()?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "gumvault".into());
    let base = format!("{exe} --config {} --quiet", config_path.display());
    let tasks = |name: &str, job: &crate::config::Job| {
        let mut v = vec![
            (
                TaskKind::Backup,
                job.schedule.0.clone(),
                format!(
                    "{base} run {name} && {base} {}",
                    forget_args(&config, name)[..forget_args(&config, name).len() - 1].join(" ")
                ),
            ),
            (TaskKind::Prune, job.prune.schedule.0.clone(), format!("{base} prune")),
            (
                TaskKind::Check,
                job.check.schedule.0.clone(),
                format!(
                    "{base} {}",
                    task_args(&config, name, TaskKind::Check)[..2].join(" ") + " " + &job.check.read_data_subset
                ),
            ),
        ];
        if let Some(t) = &job.test_restore {
            v.push((TaskKind::TestRestore, t.schedule.0.clone(), format!("{base} test-restore {name}")));
        }
        v
    };
    match a.print {
        ScheduleFormat::Cron => {
            println!("# gumvault jobs from {} (crontab format; add with `crontab -e`)", config_path.display());
            for (name, job) in &config.jobs {
                for (kind, cron, cmd) in tasks(name, job) {
                    println!("{cron} {cmd}    # {name}: {}", kind.as_str());
                }
            }
        }
        ScheduleFormat::Systemd => {
            for (name, job) in &config.jobs {
                for (kind, cron, cmd) in tasks(name, job) {
                    let unit = format!("gumvault-{name}-{}", kind.as_str());
                    println!("# /etc/systemd/system/{unit}.service");
                    println!(
                        "[Unit]\nDescription=gumvault {} of job {name}\nWants=network-online.target\nAfter=network-online.target\n",
                        kind.as_str()
                    );
                    println!("[Service]\nType=oneshot\nExecStart=/bin/sh -c '{cmd}'\n");
                    println!("# /etc/systemd/system/{unit}.timer");
                    println!("[Unit]\nDescription=gumvault {} of job {name} ({cron})\n", kind.as_str());
                    println!(
                        "[Timer]\nOnCalendar={}\nPersistent=true\n{}\n[Install]\nWantedBy=timers.target\n",
                        on_calendar(&cron)?,
                        job.random_delay.map(|d| format!("RandomizedDelaySec={}\n", d.0.as_secs())).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}

/// A 5-field cron expression as a systemd OnCalendar value (`0 */6 * * *` → `*-*-* 00/6:00:00`).
pub fn on_calendar(cron: &str) -> anyhow::Result<String> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, month, dow] = f[..] else {
        anyhow::bail!("cannot turn {cron:?} into a systemd calendar: expected 5 fields");
    };
    let field = |v: &str, width: usize| -> String {
        v.split(',')
            .map(|part| {
                if let Some(step) = part.strip_prefix("*/") {
                    format!("{:0width$}/{step}", 0)
                } else if part == "*" {
                    "*".to_string()
                } else if let Some((a, b)) = part.split_once('-') {
                    format!("{a:0>width$}..{b:0>width$}")
                } else {
                    format!("{part:0>width$}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let days = if dow == "*" {
        String::new()
    } else {
        let names: Result<Vec<String>, anyhow::Error> = dow
            .split(',')
            .map(|d| match d.split_once('-') {
                Some((a, b)) => Ok(format!("{}..{}", day(a, &DAYS)?, day(b, &DAYS)?)),
                None => day(d, &DAYS),
            })
            .collect();
        format!("{} ", names?.join(","))
    };
    Ok(format!("{days}*-{}-{} {}:{}:00", field(month, 2), field(dom, 2), field(hour, 2), field(min, 2)))
}

fn day(d: &str, names: &[&str; 8]) -> anyhow::Result<String> {
    let n: usize = d.parse().map_err(|_| anyhow::anyhow!("day of week {d:?}: use numbers 0-7 for systemd output"))?;
    names.get(n).map(|s| s.to_string()).ok_or_else(|| anyhow::anyhow!("day of week {d} is out of range"))
}

#[derive(clap::Subcommand, Debug)]
pub enum AlertCommand {
    /// Send a test alert to every channel of [alerts]
    Test,
}

pub fn alert_cmd(g: &GlobalArgs, c: &AlertCommand) -> anyhow::Result<i32> {
    let AlertCommand::Test = c;
    let config = g.require_config()?;
    if !alerts::any_channel(&config.alerts) {
        anyhow::bail!("no alert channel configured: add webhooks, command or [alerts.email] to [alerts]");
    }
    let a =
        Alert::new("test", "-", "warning", "a test alert from gumvault: alerts reach you".into(), crate::time::now());
    let failures = alerts::send(&config.alerts, &a);
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

#[cfg(test)]
mod tests {
    #[test]
    fn cron_to_systemd_calendar() {
        assert_eq!(super::on_calendar("0 */6 * * *").unwrap(), "*-*-* 00/6:00:00");
        assert_eq!(super::on_calendar("0 3 * * 0").unwrap(), "Sun *-*-* 03:00:00");
        assert_eq!(super::on_calendar("30 4 1 * 1-5").unwrap(), "Mon..Fri *-*-01 04:30:00");
        assert!(super::on_calendar("0 3 * *").is_err());
    }
}
