//! The value types of the config file, each checked when the file is read: cron schedules, durations, glob
//! patterns, and secrets (given literally or as `env:NAME` / `file:/path`, never printed).

use serde::Deserialize;

use crate::error::{Error, Result};

/// A cron expression, checked when the file is read.
#[derive(Clone, Debug)]
pub struct Schedule(pub String, pub croner::Cron);

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// Parses a 5-field cron expression.
    pub fn parse(s: &str) -> Result<Schedule> {
        let cron: croner::Cron = s.parse().map_err(|e| {
            Error::InvalidInput(format!("invalid schedule {s:?}: {e} (cron syntax, e.g. \"0 */6 * * *\")"))
        })?;
        Ok(Schedule(s.to_string(), cron))
    }

    /// The first time after `t` (in the zone `tz`) the schedule fires.
    pub fn next_after(&self, t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
        self.1.find_next_occurrence(&t.to_zoned(tz.clone()), false).ok().map(|z| z.timestamp())
    }

    /// The last time at or before `t` the schedule fired.
    pub fn previous_at_or_before(&self, t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
        self.1.find_previous_occurrence(&t.to_zoned(tz.clone()), true).ok().map(|z| z.timestamp())
    }
}

/// A duration such as `30d`, `7h`, `90m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub jiff::SignedDuration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::time::parse_duration(&s).map(Duration).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

/// A glob pattern, checked when the file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(pub String);

impl AsRef<str> for Glob {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        globset::Glob::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid glob {s:?}: {e}")))?;
        Ok(Glob(s))
    }
}

/// A secret: given literally, or as `env:NAME` (an environment variable) or `file:/path` (a file's content less a
/// trailing newline). Its value is never printed; `Debug` shows only the reference.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its spec as written in the config: a literal, `env:NAME` or `file:/path`.
    pub fn new(spec: &str) -> Secret {
        Secret(spec.to_string())
    }

    /// Where the value comes from, safe to print.
    pub fn describe(&self) -> String {
        if self.0.starts_with("env:") || self.0.starts_with("file:") { self.0.clone() } else { "(literal)".into() }
    }

    /// The environment variable an `env:NAME` secret is read from (children do not inherit it).
    pub fn env_name(&self) -> Option<&str> {
        self.0.strip_prefix("env:")
    }

    /// The file a `file:/path` secret is read from (its permissions are worth a look).
    pub fn file_path(&self) -> Option<&std::path::Path> {
        self.0.strip_prefix("file:").map(std::path::Path::new)
    }

    /// The value.
    pub fn resolve(&self) -> Result<String> {
        if let Some(name) = self.0.strip_prefix("env:") {
            return std::env::var(name).map_err(|_| {
                Error::InvalidInput(format!("environment variable {name} is not set (referenced as env:{name})"))
            });
        }
        if let Some(path) = self.0.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read the secret file", path, e))?;
            return Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string());
        }
        Ok(self.0.clone())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.describe())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(name) = s.strip_prefix("env:")
            && (name.is_empty() || name.contains(['=', '\0']))
        {
            return Err(serde::de::Error::custom("env: needs a variable name, as in env:DATABASE_URL"));
        }
        if let Some(path) = s.strip_prefix("file:")
            && !path.starts_with('/')
        {
            return Err(serde::de::Error::custom("file: needs an absolute path, as in file:/etc/gumvault/db-url"));
        }
        Ok(Secret(s))
    }
}
