//! The whole config file: reading it, and finding a job in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::alerts::{AlertsConfig, HttpConfig};
use super::jobs::Job;
use super::repository::RepositoryConfig;
use crate::error::{Error, Result};

/// Environment variable naming the config file (instead of `--config`).
pub const CONFIG_ENV: &str = "GUMVAULT_CONFIG";

/// A whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[repository]`.
    #[serde(default)]
    pub repository: RepositoryConfig,
    /// `[jobs.NAME]`, by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, Job>,
    /// `[alerts]`: where the daemon sends alerts.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[http]`: the status endpoint of `daemon` and `serve`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Where the file was read from (for messages).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read the config file", path, e))?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        // toml's own message quotes the offending line, which may hold a literal secret: keep its reason (without
        // the value serde quotes in it) and point at the line and the key instead.
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            Error::Config {
                file: path.to_path_buf(),
                line: at.map(|offset| super::validate::line_of(text, offset)),
                key: at.and_then(|offset| key_at(text, offset)).unwrap_or_default(),
                reason: without_values(e.message()),
            }
        })?;
        config.path = path.to_path_buf();
        super::validate::validate(path, &config.jobs, &config.alerts, text)?;
        Ok(config)
    }

    /// The job named `name`, or an error listing the jobs there are.
    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            Error::InvalidInput(format!(
                "no job {name:?} in {} (jobs: {})",
                self.path.display(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    /// The named job, or the only one when no name is given.
    pub fn job_or_only<'a>(&'a self, name: Option<&'a str>) -> Result<(&'a str, &'a Job)> {
        if let Some(name) = name {
            return Ok((name, self.job(name)?));
        }
        let mut jobs = self.jobs.iter();
        match (jobs.next(), jobs.next()) {
            (Some((name, job)), None) => Ok((name, job)),
            (None, _) => Err(Error::InvalidInput(format!("{} defines no [jobs.NAME]", self.path.display()))),
            (Some(_), Some(_)) => Err(Error::InvalidInput(format!(
                "{} defines several jobs ({}): name the one to run",
                self.path.display(),
                self.jobs.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// serde's `invalid type: string "…", expected …` and `invalid value: …` quote the value, which may be a secret (a
/// password written as a number, a webhook URL with its token where a list belongs): keep what kind of value it
/// was and what was expected, never the value.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind(", expected ")
        {
            let kind = rest[..at].split(['"', '`', '\'']).next().unwrap_or_default().trim();
            return format!("{prefix}{kind}{}", &rest[at..]);
        }
    }
    message.to_string()
}

/// The key of the `key = value` line holding byte `offset`, with the table it is in (`repository.password`).
/// Only a plain key counts: the text before `=` of a line inside a multi-line value could be a value.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let head = &text[..offset.min(text.len())];
    let line_start = head.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let (key, _) = line.split_once('=')?;
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let key = key.trim();
    let previous = head[..line_start].lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    if !plain(key) || previous.is_some_and(|l| l.ends_with([',', '[', '{'])) {
        return None;
    }
    let table = head[..line_start].lines().rev().map(str::trim).find_map(|l| {
        let name = l.strip_prefix('[')?.split(']').next()?.trim_start_matches('[').trim();
        plain(name).then_some(name)
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}
