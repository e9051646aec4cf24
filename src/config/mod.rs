//! The configuration file (`gumvault.toml`): the repository, where its password comes from, and named jobs made of
//! sources. Parsing is strict: unknown keys and bad values are errors naming the file, the line and the key.
//! Nothing here touches the network or runs programs; secrets are resolved only when a command needs them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// Environment variable naming the config file (instead of `--config`).
pub const CONFIG_ENV: &str = "GUMVAULT_CONFIG";

/// A whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub repository: RepositoryConfig,
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

/// `[repository]`: every command takes the repository and password from here unless flags or the environment
/// say otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub url: Option<String>,
    /// The password, or a reference to it (`env:NAME`, `file:/path`).
    pub password: Option<Secret>,
    /// A shell command that prints the password.
    pub password_command: Option<String>,
    /// Directory of the local catalog.
    pub cache_dir: Option<PathBuf>,
    /// The regions (each a complete copy): used by `init`, and to override stored URLs by name.
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// Regions that must hold each new object (default: all).
    pub min_regions: Option<u32>,
    /// Regions reads try first, in this order.
    #[serde(default)]
    pub prefer_regions: Vec<String>,
}

/// `[[repository.regions]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    pub url: String,
}

/// `[jobs.NAME]`: what one `gumvault run NAME` backs up into one snapshot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Host name recorded in the snapshot (default: this machine's).
    pub host: Option<String>,
    /// Tags added besides the job's name.
    #[serde(default)]
    pub tags: Vec<String>,
    pub sources: Vec<Spanned<SourceSpec>>,
    /// `[jobs.NAME.test_restore]`: how `gumvault test-restore NAME` proves the database dump restores.
    pub test_restore: Option<TestRestore>,
    /// When the daemon backs the job up (cron syntax, local time; default every 6 hours).
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Up to this long a random wait before each scheduled backup (spreads load across machines).
    pub random_delay: Option<Duration>,
    /// Health turns `warning` when the newest backup is older than this (default 7h) ...
    #[serde(default = "default_warning")]
    pub warning_after: Duration,
    /// ... and `critical` after this (default 8h), or when the last run failed.
    #[serde(default = "default_critical")]
    pub critical_after: Duration,
    /// `[jobs.NAME.retention]`: applied after every backup (default: keep_within = "30d").
    #[serde(default)]
    pub retention: Retention,
    /// `[jobs.NAME.prune]` (default: weekly, Sunday 03:00).
    #[serde(default)]
    pub prune: PruneSchedule,
    /// `[jobs.NAME.check]` (default: daily at 04:00, read_data_subset = "auto": every pack within a week).
    #[serde(default)]
    pub check: CheckSchedule,
}

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
    pub fn parse(s: &str) -> std::result::Result<Schedule, String> {
        let cron: croner::Cron =
            s.parse().map_err(|e| format!("invalid schedule {s:?}: {e} (cron syntax, e.g. \"0 */6 * * *\")"))?;
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

fn default_schedule() -> Schedule {
    Schedule::parse("0 */6 * * *").expect("the default schedule parses")
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

fn default_warning() -> Duration {
    Duration(jiff::SignedDuration::from_hours(7))
}

fn default_critical() -> Duration {
    Duration(jiff::SignedDuration::from_hours(8))
}

/// `[jobs.NAME.retention]`: the `forget` policy the daemon applies to the job's snapshots after each backup.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default = "default_keep_within")]
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_last: usize,
    #[serde(default)]
    pub keep_hourly: usize,
    #[serde(default)]
    pub keep_daily: usize,
    #[serde(default)]
    pub keep_weekly: usize,
    #[serde(default)]
    pub keep_monthly: usize,
    #[serde(default)]
    pub keep_yearly: usize,
}

fn default_keep_within() -> Option<String> {
    Some("30d".into())
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_within: default_keep_within(),
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
        }
    }
}

impl Retention {
    /// The `forget` flags of this policy.
    pub fn forget_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(w) = &self.keep_within {
            a.extend(["--keep-within".to_string(), w.clone()]);
        }
        for (flag, n) in [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
            ("--keep-yearly", self.keep_yearly),
        ] {
            if n > 0 {
                a.extend([flag.to_string(), n.to_string()]);
            }
        }
        a
    }
}

/// `[jobs.NAME.prune]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSchedule {
    #[serde(default = "default_prune_schedule")]
    pub schedule: Schedule,
}

fn default_prune_schedule() -> Schedule {
    Schedule::parse("0 3 * * 0").expect("the default schedule parses")
}

impl Default for PruneSchedule {
    fn default() -> Self {
        PruneSchedule { schedule: default_prune_schedule() }
    }
}

/// `[jobs.NAME.check]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSchedule {
    #[serde(default = "default_check_schedule")]
    pub schedule: Schedule,
    /// `10%`, `3/7`, `auto` (default) or `all`.
    #[serde(default = "default_subset")]
    pub read_data_subset: String,
}

fn default_check_schedule() -> Schedule {
    Schedule::parse("0 4 * * *").expect("the default schedule parses")
}

fn default_subset() -> String {
    "auto".into()
}

impl Default for CheckSchedule {
    fn default() -> Self {
        CheckSchedule { schedule: default_check_schedule(), read_data_subset: default_subset() }
    }
}

/// `[alerts]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// URLs that receive each alert as a JSON POST (Slack, PagerDuty, your own).
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// A shell command run for each alert, with the alert as JSON on standard input.
    pub command: Option<String>,
    /// `[alerts.email]`.
    pub email: Option<EmailConfig>,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (submission, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: only for a relay on loopback.
    None,
}

/// `[alerts.email]`: SMTP, by default with STARTTLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the SMTP server (port 587 when left out, 465 with `tls = "implicit"`).
    pub server: String,
    /// See [`EmailConfig::tls`].
    #[serde(rename = "tls")]
    pub tls_mode: Option<SmtpTls>,
    /// The older spelling: `starttls = false` is `tls = "none"`.
    pub starttls: Option<bool>,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    /// A PEM file of root certificates to trust besides the public ones (a relay with a private CA).
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

impl EmailConfig {
    /// How the connection is protected: `tls`, else the older `starttls`, else STARTTLS.
    pub fn tls(&self) -> SmtpTls {
        match (self.tls_mode, self.starttls) {
            (Some(mode), _) => mode,
            (None, Some(false)) => SmtpTls::None,
            (None, _) => SmtpTls::Starttls,
        }
    }
}

/// `[http]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default 127.0.0.1:8330).
    pub listen: Option<String>,
    /// A bearer token that /status and /metrics need (/healthz and the dashboard page do not).
    pub token: Option<Secret>,
}

/// One source of a job. Each becomes a top-level directory `/NAME` of the job's snapshot.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSpec {
    Postgres(PostgresSource),
    S3(S3Source),
    Redis(RedisSource),
    Files(FilesSource),
    Env(EnvSource),
}

/// Format of a PostgreSQL dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// SQL text, restored with psql (dedups best).
    #[default]
    Plain,
    /// pg_dump's custom archive, restored with pg_restore.
    Custom,
}

impl DumpFormat {
    /// The file name of the dump inside the source's directory.
    pub fn file_name(self) -> &'static str {
        match self {
            DumpFormat::Plain => "dump.sql",
            DumpFormat::Custom => "dump.pgdump",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
    /// `postgres://user:password@host:port/db` or a reference to it; default `env:DATABASE_URL`.
    pub url: Option<Secret>,
    #[serde(default)]
    pub format: DumpFormat,
    /// Only these tables (pg_dump `--table` patterns).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Leave these tables out (pg_dump `--exclude-table` patterns).
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// The pg_dump program (default: `pg_dump` on PATH).
    pub pg_dump: Option<PathBuf>,
    /// Row order of table data in a plain dump: `physical` (pg_dump's) or `primary-key`, which keeps unchanged
    /// rows in the same place from one dump to the next so successive dumps dedup far better.
    #[serde(default)]
    pub order: RowOrder,
}

/// Row order of a plain dump's table data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowOrder {
    #[default]
    Physical,
    PrimaryKey,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
    /// `s3://bucket/prefix?endpoint=URL&region=R`.
    pub url: String,
    /// Keep only objects whose key (below the prefix) matches one of these globs; empty keeps everything.
    #[serde(default)]
    pub include: Vec<Glob>,
    #[serde(default)]
    pub exclude: Vec<Glob>,
    /// Credentials (default: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Objects downloaded at once (default 16).
    pub concurrency: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSource {
    pub name: String,
    /// Redis is a cache: optional unless said otherwise.
    #[serde(default = "yes")]
    pub optional: bool,
    /// `redis://[:password@]host:port` or a reference to it; default `redis://127.0.0.1:6379`.
    pub url: Option<Secret>,
    /// The redis-cli program (default: `redis-cli` on PATH).
    pub redis_cli: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
    /// Absolute paths of files and directories.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns, as `backup --exclude`.
    #[serde(default)]
    pub exclude: Vec<Glob>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSource {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
    /// Variables by name (each must be set).
    #[serde(default)]
    pub names: Vec<String>,
    /// Every variable whose name starts with this.
    pub prefix: Option<String>,
    /// A `.env` file, stored as it is.
    pub file: Option<PathBuf>,
}

/// `[jobs.NAME.test_restore]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRestore {
    /// When the daemon runs it (default: monthly, the 1st at 05:00).
    #[serde(default = "default_test_restore_schedule")]
    pub schedule: Schedule,
    /// Which postgres source (default: the job's only one).
    pub source: Option<String>,
    /// A connection allowed to create and drop databases (default: the source's URL).
    pub admin_url: Option<Secret>,
    #[serde(default)]
    pub queries: Vec<VerifyQuery>,
}

/// A verification query run against the restored database.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    pub sql: String,
    /// The first column of the first row must be a number at least this large.
    pub min: Option<i64>,
    /// The query must return at least this many rows.
    pub min_rows: Option<u64>,
}

fn yes() -> bool {
    true
}

fn default_test_restore_schedule() -> Schedule {
    Schedule::parse("0 5 1 * *").expect("the default schedule parses")
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
    pub fn new(spec: &str) -> Secret {
        Secret(spec.to_string())
    }

    /// Where the value comes from, safe to print.
    pub fn describe(&self) -> String {
        if self.0.starts_with("env:") || self.0.starts_with("file:") { self.0.clone() } else { "(literal)".into() }
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

impl SourceSpec {
    pub fn name(&self) -> &str {
        match self {
            SourceSpec::Postgres(s) => &s.name,
            SourceSpec::S3(s) => &s.name,
            SourceSpec::Redis(s) => &s.name,
            SourceSpec::Files(s) => &s.name,
            SourceSpec::Env(s) => &s.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Postgres(_) => "postgres",
            SourceSpec::S3(_) => "s3",
            SourceSpec::Redis(_) => "redis",
            SourceSpec::Files(_) => "files",
            SourceSpec::Env(_) => "env",
        }
    }

    /// A failing optional source is reported and left out of the snapshot; a failing required one fails the run.
    pub fn optional(&self) -> bool {
        match self {
            SourceSpec::Postgres(s) => s.optional,
            SourceSpec::S3(s) => s.optional,
            SourceSpec::Redis(s) => s.optional,
            SourceSpec::Files(s) => s.optional,
            SourceSpec::Env(s) => s.optional,
        }
    }
}

impl Job {
    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().map(|s| s.get_ref()).find(|s| s.name() == name)
    }

    /// The postgres source `test-restore` uses.
    pub fn test_restore_source(&self) -> Result<&PostgresSource> {
        let wanted = self.test_restore.as_ref().and_then(|t| t.source.as_deref());
        let pg: Vec<&PostgresSource> = self
            .sources
            .iter()
            .filter_map(|s| match s.get_ref() {
                SourceSpec::Postgres(p) if wanted.is_none_or(|w| w == p.name) => Some(p),
                _ => None,
            })
            .collect();
        match (pg.as_slice(), wanted) {
            ([one], _) => Ok(one),
            ([], Some(w)) => Err(Error::InvalidInput(format!("the job has no postgres source named {w:?}"))),
            ([], None) => Err(Error::InvalidInput("the job has no postgres source to test".into())),
            _ => Err(Error::InvalidInput(
                "the job has several postgres sources: name one with test_restore.source".into(),
            )),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read the config file", path, e))?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("invalid config file {}: {e}", path.display())))?;
        config.path = path.to_path_buf();
        config.validate(text)?;
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

    /// Checks what serde cannot: names, uniqueness, required combinations.
    fn validate(&self, text: &str) -> Result<()> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        for (job_name, job) in &self.jobs {
            let fail = |line: Option<usize>, key: String, why: String| {
                let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
                Error::InvalidInput(format!("invalid config file {}{at}: {key}: {why}", self.path.display()))
            };
            if !plain_name(job_name) {
                return Err(fail(
                    None,
                    format!("jobs.{job_name}"),
                    "job names may hold only letters, digits, '.', '_' and '-'".into(),
                ));
            }
            if job.sources.is_empty() {
                return Err(fail(None, format!("jobs.{job_name}.sources"), "a job needs at least one source".into()));
            }
            let mut seen = BTreeSet::new();
            for (i, spanned) in job.sources.iter().enumerate() {
                let source = spanned.get_ref();
                let line = Some(line_of(spanned.span().start));
                let key = format!("jobs.{job_name}.sources[{i}] (name = {:?})", source.name());
                if !plain_name(source.name()) {
                    return Err(fail(line, key, "source names may hold only letters, digits, '.', '_' and '-'".into()));
                }
                if !seen.insert(source.name()) {
                    return Err(fail(line, key, "another source of this job has the same name".into()));
                }
                match source {
                    SourceSpec::Files(f) => {
                        if f.paths.is_empty() {
                            return Err(fail(line, key + ".paths", "give at least one path".into()));
                        }
                        if let Some(p) = f.paths.iter().find(|p| !p.is_absolute()) {
                            return Err(fail(line, key + ".paths", format!("{} is not an absolute path", p.display())));
                        }
                    }
                    SourceSpec::Env(e) => {
                        if e.names.is_empty() && e.prefix.is_none() && e.file.is_none() {
                            return Err(fail(line, key, "give names, a prefix or a file".into()));
                        }
                        if let Some(n) = e.names.iter().find(|n| n.is_empty() || n.contains(['=', '\0'])) {
                            return Err(fail(line, key + ".names", format!("{n:?} is not a variable name")));
                        }
                    }
                    SourceSpec::S3(s) => {
                        if !s.url.starts_with("s3://") {
                            return Err(fail(
                                line,
                                key + ".url",
                                "must be s3://bucket[/prefix][?endpoint=URL&region=R]".into(),
                            ));
                        }
                        crate::storage::Location::parse(&s.url)
                            .map_err(|e| fail(line, key.clone() + ".url", e.to_string()))?;
                        if s.concurrency == Some(0) {
                            return Err(fail(line, key + ".concurrency", "must be at least 1".into()));
                        }
                    }
                    SourceSpec::Postgres(p) => {
                        if p.order == RowOrder::PrimaryKey && p.format != DumpFormat::Plain {
                            return Err(fail(
                                line,
                                key + ".order",
                                "primary-key order needs format = \"plain\"".into(),
                            ));
                        }
                        if p.order == RowOrder::PrimaryKey && !(p.tables.is_empty() && p.exclude_tables.is_empty()) {
                            return Err(fail(
                                line,
                                key + ".order",
                                "primary-key order dumps the whole database: drop tables/exclude_tables".into(),
                            ));
                        }
                    }
                    SourceSpec::Redis(_) => {}
                }
            }
            if let Some(t) = &job.test_restore {
                job.test_restore_source()
                    .map_err(|e| fail(None, format!("jobs.{job_name}.test_restore"), e.to_string()))?;
                for (i, q) in t.queries.iter().enumerate() {
                    if q.sql.trim().is_empty() {
                        return Err(fail(
                            None,
                            format!("jobs.{job_name}.test_restore.queries[{i}].sql"),
                            "empty query".into(),
                        ));
                    }
                }
            }
        }
        if let Some(email) = &self.alerts.email {
            let ca = email.ca_file.as_ref();
            let (key, why) = if email.tls_mode.is_some() && email.starttls.is_some() {
                ("starttls", Some("give tls or the older starttls, not both".to_string()))
            } else if let Some(ca) = ca.filter(|ca| !ca.is_absolute()) {
                ("ca_file", Some(format!("{} is not an absolute path", ca.display())))
            } else if ca.is_some() && email.tls() == SmtpTls::None {
                ("ca_file", Some("a CA file needs TLS: drop it or set tls = \"starttls\" or \"implicit\"".into()))
            } else {
                ("", None)
            };
            if let Some(why) = why {
                return Err(Error::InvalidInput(format!(
                    "invalid config file {}: alerts.email.{key}: {why}",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }
}

/// Names that are safe as one path component everywhere.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[repository]
url = "/var/backups/gumvault"
password = "env:GUMVAULT_PASSWORD"

[[jobs.bubblegum.sources]]
name = "db"
kind = "postgres"
url = "env:DATABASE_URL"

[[jobs.bubblegum.sources]]
name = "uploads"
kind = "s3"
url = "s3://bubblegum-uploads?endpoint=http://127.0.0.1:9000&region=us-east-1"
include = ["*.jpg", "*.png", "*.pdf"]

[[jobs.bubblegum.sources]]
name = "cache"
kind = "redis"
url = "redis://127.0.0.1:6379"
optional = true

[[jobs.bubblegum.sources]]
name = "config"
kind = "files"
paths = ["/etc/bubblegum"]
exclude = ["*.tmp"]

[[jobs.bubblegum.sources]]
name = "env"
kind = "env"
names = ["DATABASE_URL", "STRIPE_SECRET_KEY"]
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/gumvault.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("config should be rejected").to_string()
    }

    #[test]
    fn the_issue_example_parses_as_written() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.repository.url.as_deref(), Some("/var/backups/gumvault"));
        let job = c.job("bubblegum").unwrap();
        let kinds: Vec<(&str, &str, bool)> =
            job.sources.iter().map(|s| (s.get_ref().name(), s.get_ref().kind(), s.get_ref().optional())).collect();
        assert_eq!(
            kinds,
            [
                ("db", "postgres", false),
                ("uploads", "s3", false),
                ("cache", "redis", true),
                ("config", "files", false),
                ("env", "env", false)
            ]
        );
        let SourceSpec::S3(s3) = job.source("uploads").unwrap() else { panic!("uploads is s3") };
        assert_eq!(s3.include, [Glob("*.jpg".into()), Glob("*.png".into()), Glob("*.pdf".into())]);
        assert_eq!(job.test_restore_source().unwrap().name, "db");
    }

    #[test]
    fn a_lone_job_needs_no_name() {
        let one = parse("[[jobs.app.sources]]\nname = \"e\"\nkind = \"env\"\nnames = [\"A\"]\n").unwrap();
        assert_eq!(one.job_or_only(None).unwrap().0, "app");
        assert!(one.job_or_only(Some("other")).is_err());
        let env = "kind = \"env\"\nnames = [\"A\"]\n";
        let two =
            parse(&format!("[[jobs.a.sources]]\nname = \"e\"\n{env}[[jobs.b.sources]]\nname = \"e\"\n{env}")).unwrap();
        assert_eq!(two.job_or_only(Some("b")).unwrap().0, "b");
        let e = two.job_or_only(None).unwrap_err().to_string();
        assert!(e.contains("several jobs (a, b)"), "{e}");
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e =
            err("[repository]\nurl = \"/x\"\n\n[[jobs.a.sources]]\nname = \"db\"\nkind = \"postgres\"\nurll = \"x\"\n");
        assert!(e.contains("/etc/gumvault.toml"), "{e}");
        assert!(e.contains("urll"), "{e}");
        assert!(e.contains("line 4") || e.contains("line 7"), "{e}");
        let e = err("[repositry]\nurl = \"/x\"\n");
        assert!(e.contains("repositry") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        let e = err("[[jobs.a.sources]]\nname = \"x\"\nkind = \"ftp\"\n");
        assert!(e.contains("ftp"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"u\"\nkind = \"s3\"\nurl = \"s3://b\"\ninclude = [\"[\"]\n");
        assert!(e.contains("invalid glob") && e.contains("line"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"c\"\nkind = \"files\"\npaths = [\"relative/dir\"]\n");
        assert!(e.contains("line 1") && e.contains("paths") && e.contains("absolute"), "{e}");
        let e = err(
            "[[jobs.a.sources]]\nname = \"c\"\nkind = \"files\"\npaths = [\"/a\"]\n[[jobs.a.sources]]\nname = \"c\"\nkind = \"env\"\nnames = [\"A\"]\n",
        );
        assert!(e.contains("line 5") && e.contains("same name"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"../x\"\nkind = \"env\"\nnames = [\"A\"]\n");
        assert!(e.contains("source names"), "{e}");
        let e = err("[alerts.email]\nserver = \"x:25\"\nca_file = \"ca.pem\"\nfrom = \"a@b.c\"\nto = []\n");
        assert!(e.contains("alerts.email.ca_file") && e.contains("absolute"), "{e}");
        let e = err(
            "[alerts.email]\nserver = \"x:25\"\ntls = \"none\"\nca_file = \"/ca.pem\"\nfrom = \"a@b.c\"\nto = []\n",
        );
        assert!(e.contains("alerts.email.ca_file") && e.contains("needs TLS"), "{e}");
        let e = err("[alerts.email]\nserver = \"x:25\"\ntls = \"none\"\nstarttls = false\nfrom = \"a@b.c\"\nto = []\n");
        assert!(e.contains("alerts.email.starttls") && e.contains("not both"), "{e}");
        let older = parse("[alerts.email]\nserver = \"x:25\"\nstarttls = false\nfrom = \"a@b.c\"\nto = []\n").unwrap();
        assert_eq!(older.alerts.email.unwrap().tls(), SmtpTls::None, "the older spelling still works");
        let e = err("[repository]\npassword = \"file:relative\"\n");
        assert!(e.contains("absolute path") && e.contains("line 2"), "{e}");
        let e = err(
            "[[jobs.a.sources]]\nname = \"db\"\nkind = \"postgres\"\nformat = \"custom\"\norder = \"primary-key\"\n",
        );
        assert!(e.contains("line 1") && e.contains("order") && e.contains("plain"), "{e}");
        let e = err("[jobs.a]\nsources = []\n");
        assert!(e.contains("at least one source"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"e\"\nkind = \"env\"\n");
        assert!(e.contains("names, a prefix or a file"), "{e}");
    }

    #[test]
    fn secrets_resolve_without_showing_their_values() {
        let literal = Secret::new("hunter2");
        assert_eq!(literal.resolve().unwrap(), "hunter2");
        assert!(!format!("{literal:?}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = Secret::new(&format!("file:{}", file.display()));
        assert_eq!(from_file.resolve().unwrap(), "from-file");
        let missing = Secret::new("env:GUMVAULT_TEST_SURELY_UNSET_VARIABLE");
        assert!(missing.resolve().unwrap_err().to_string().contains("GUMVAULT_TEST_SURELY_UNSET_VARIABLE"));
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../../docs/gumvault.example.toml");
        let c = parse(text).unwrap();
        let job = c.job("bubblegum").unwrap();
        assert_eq!(job.sources.len(), 5);
        assert_eq!(job.test_restore.as_ref().unwrap().queries.len(), 2);
    }

    #[test]
    fn test_restore_needs_a_postgres_source() {
        let e = err(
            "[jobs.a]\nsources = [{ name = \"c\", kind = \"files\", paths = [\"/a\"] }]\n[jobs.a.test_restore]\nqueries = [{ sql = \"SELECT 1\", min = 1 }]\n",
        );
        assert!(e.contains("no postgres source"), "{e}");
    }
}
