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
        // toml's own message quotes the offending line, which may hold a literal secret: keep its reason and
        // point at the line instead.
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            line: e.span().map(|s| super::validate::line_of(text, s.start)),
            key: String::new(),
            reason: e.message().to_string(),
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
