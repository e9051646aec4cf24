//! The timetable for people who prefer the system's scheduler to `gumvault daemon`: crontab lines, or a
//! systemd service and timer per task.

use std::fmt::Write;
use std::path::Path;

use super::schedule::TaskKind;
use super::tasks::{forget_args, task_args};
use crate::config::{Config, Job};
use crate::error::{Error, Result};

/// One task as the system's scheduler runs it.
struct Task {
    kind: TaskKind,
    cron: String,
    command: String,
}

/// The shell command of every task of `job`, each run as `EXE --config CONFIG --quiet …`.
fn tasks(config: &Config, base: &str, name: &str, job: &Job) -> Vec<Task> {
    let forget = forget_args(config, name);
    let check = task_args(config, name, TaskKind::Check);
    let mut v = vec![
        Task {
            kind: TaskKind::Backup,
            cron: job.schedule.0.clone(),
            command: format!("{base} run {name} && {base} {}", forget[..forget.len() - 1].join(" ")),
        },
        Task { kind: TaskKind::Prune, cron: job.prune.schedule.0.clone(), command: format!("{base} prune") },
        Task {
            kind: TaskKind::Check,
            cron: job.check.schedule.0.clone(),
            command: format!("{base} {} {}", check[..2].join(" "), job.check.read_data_subset),
        },
    ];
    if let Some(t) = &job.test_restore {
        v.push(Task {
            kind: TaskKind::TestRestore,
            cron: t.schedule.0.clone(),
            command: format!("{base} test-restore {name}"),
        });
    }
    v
}

fn base(exe: &str, config_path: &Path) -> String {
    format!("{exe} --config {} --quiet", config_path.display())
}

/// Crontab lines for every task of every job.
pub fn crontab(config: &Config, exe: &str, config_path: &Path) -> String {
    let base = base(exe, config_path);
    let mut out = format!("# gumvault jobs from {} (crontab format; add with `crontab -e`)\n", config_path.display());
    for (name, job) in &config.jobs {
        for t in tasks(config, &base, name, job) {
            let _ = writeln!(out, "{} {}    # {name}: {}", t.cron, t.command, t.kind.as_str());
        }
    }
    out
}

/// A systemd service and timer for every task of every job.
pub fn systemd_units(config: &Config, exe: &str, config_path: &Path) -> Result<String> {
    let base = base(exe, config_path);
    let mut out = String::new();
    for (name, job) in &config.jobs {
        for t in tasks(config, &base, name, job) {
            let (kind, cron) = (t.kind.as_str(), &t.cron);
            let unit = format!("gumvault-{name}-{kind}");
            let delay = job.random_delay.map(|d| format!("RandomizedDelaySec={}\n", d.0.as_secs())).unwrap_or_default();
            let _ = writeln!(out, "# /etc/systemd/system/{unit}.service");
            let _ = writeln!(
                out,
                "[Unit]\nDescription=gumvault {kind} of job {name}\nWants=network-online.target\nAfter=network-online.target\n"
            );
            let _ = writeln!(out, "[Service]\nType=oneshot\nExecStart=/bin/sh -c '{}'\n", t.command);
            let _ = writeln!(out, "# /etc/systemd/system/{unit}.timer");
            let _ = writeln!(out, "[Unit]\nDescription=gumvault {kind} of job {name} ({cron})\n");
            let _ = writeln!(
                out,
                "[Timer]\nOnCalendar={}\nPersistent=true\n{delay}\n[Install]\nWantedBy=timers.target\n",
                on_calendar(cron)?
            );
        }
    }
    Ok(out)
}

/// A 5-field cron expression as a systemd OnCalendar value (`0 */6 * * *` → `*-*-* 00/6:00:00`).
pub fn on_calendar(cron: &str) -> Result<String> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, month, dow] = f[..] else {
        return Err(Error::InvalidInput(format!("cannot turn {cron:?} into a systemd calendar: expected 5 fields")));
    };
    let days = if dow == "*" { String::new() } else { format!("{} ", weekdays(dow)?) };
    Ok(format!("{days}*-{}-{} {}:{}:00", field(month, 2), field(dom, 2), field(hour, 2), field(min, 2)))
}

/// One cron field in systemd's spelling: `*/6` → `00/6`, `1-5` → `01..05`, `3` → `03`.
fn field(v: &str, width: usize) -> String {
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
}

/// The day-of-week field as names: `1-5` → `Mon..Fri`.
fn weekdays(dow: &str) -> Result<String> {
    let names: Result<Vec<String>> = dow
        .split(',')
        .map(|d| match d.split_once('-') {
            Some((a, b)) => Ok(format!("{}..{}", day(a)?, day(b)?)),
            None => day(d),
        })
        .collect();
    Ok(names?.join(","))
}

fn day(d: &str) -> Result<String> {
    const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let n: usize =
        d.parse().map_err(|_| Error::InvalidInput(format!("day of week {d:?}: use numbers 0-7 for systemd output")))?;
    DAYS.get(n).map(|s| s.to_string()).ok_or_else(|| Error::InvalidInput(format!("day of week {d} is out of range")))
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
