//! What serde cannot check: names, uniqueness, combinations that need each other. Every message names the
//! file, the line (where a source has one) and the key — never a value, which may be a secret.

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};

use super::alerts::{AlertsConfig, EmailConfig, SmtpTls};
use super::jobs::Job;
use super::sources::{DumpFormat, RowOrder, SourceSpec};
use crate::children::NEVER_PASSED;
use crate::error::{Error, Result};

/// Checks the jobs and alerts of the config file at `path`; `text` is the file, for line numbers.
pub fn validate(path: &Path, jobs: &BTreeMap<String, Job>, alerts: &AlertsConfig, text: &str) -> Result<()> {
    let checker = Checker { file: path.to_path_buf(), text };
    checker.jobs(jobs)?;
    checker.command_env(&alerts.command_env)?;
    match &alerts.email {
        Some(email) => checker.email(email),
        None => Ok(()),
    }
}

/// Where messages point.
struct Checker<'t> {
    file: PathBuf,
    text: &'t str,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    fn fail(&self, line: Option<usize>, key: String, why: impl Into<String>) -> Error {
        Error::Config { file: self.file.clone(), line, key, reason: why.into() }
    }

    fn jobs(&self, jobs: &BTreeMap<String, Job>) -> Result<()> {
        for (name, job) in jobs {
            self.job(name, job)?;
        }
        Ok(())
    }

    fn job(&self, name: &str, job: &Job) -> Result<()> {
        if !plain_name(name) {
            return Err(self.fail(
                None,
                format!("jobs.{name}"),
                "job names may hold only letters, digits, '.', '_' and '-'",
            ));
        }
        if job.sources.is_empty() {
            return Err(self.fail(None, format!("jobs.{name}.sources"), "a job needs at least one source"));
        }
        let mut seen = BTreeSet::new();
        for (i, spanned) in job.sources.iter().enumerate() {
            let source = spanned.get_ref();
            let line = Some(self.line_of(spanned.span().start));
            let key = format!("jobs.{name}.sources[{i}] (name = {:?})", source.name());
            if !plain_name(source.name()) {
                return Err(self.fail(line, key, "source names may hold only letters, digits, '.', '_' and '-'"));
            }
            if !seen.insert(source.name()) {
                return Err(self.fail(line, key, "another source of this job has the same name"));
            }
            self.source(source, line, key)?;
        }
        self.test_restore(name, job)
    }

    fn source(&self, source: &SourceSpec, line: Option<usize>, key: String) -> Result<()> {
        match source {
            SourceSpec::Files(f) => {
                if f.paths.is_empty() {
                    return Err(self.fail(line, key + ".paths", "give at least one path"));
                }
                if let Some(p) = f.paths.iter().find(|p| !p.is_absolute()) {
                    return Err(self.fail(line, key + ".paths", format!("{} is not an absolute path", p.display())));
                }
            }
            SourceSpec::Env(e) => {
                if e.names.is_empty() && e.prefix.is_none() && e.file.is_none() {
                    return Err(self.fail(line, key, "give names, a prefix or a file"));
                }
                if let Some(n) = e.names.iter().find(|n| n.is_empty() || n.contains(['=', '\0'])) {
                    return Err(self.fail(line, key + ".names", format!("{n:?} is not a variable name")));
                }
            }
            SourceSpec::S3(s) => {
                if !s.url.starts_with("s3://") {
                    return Err(self.fail(line, key + ".url", "must be s3://bucket[/prefix][?endpoint=URL&region=R]"));
                }
                crate::storage::Location::parse(&s.url)
                    .map_err(|e| self.fail(line, key.clone() + ".url", e.to_string()))?;
                if s.concurrency == Some(0) {
                    return Err(self.fail(line, key + ".concurrency", "must be at least 1"));
                }
            }
            SourceSpec::Postgres(p) => {
                if p.order == RowOrder::PrimaryKey && p.format != DumpFormat::Plain {
                    return Err(self.fail(line, key + ".order", "primary-key order needs format = \"plain\""));
                }
                if p.order == RowOrder::PrimaryKey && !(p.tables.is_empty() && p.exclude_tables.is_empty()) {
                    return Err(self.fail(
                        line,
                        key + ".order",
                        "primary-key order dumps the whole database: drop tables/exclude_tables",
                    ));
                }
            }
            SourceSpec::PostgresPhysical(p) => {
                if let Some(path) = p.pg_basebackup.as_ref().filter(|p| !p.is_absolute()) {
                    return Err(self.fail(
                        line,
                        key + ".pg_basebackup",
                        format!("{} is not an absolute path", path.display()),
                    ));
                }
            }
            SourceSpec::Redis(_) => {}
        }
        Ok(())
    }

    fn test_restore(&self, name: &str, job: &Job) -> Result<()> {
        let Some(t) = &job.test_restore else { return Ok(()) };
        job.test_restore_target().map_err(|e| self.fail(None, format!("jobs.{name}.test_restore"), e.to_string()))?;
        if let Some(i) = t.queries.iter().position(|q| q.sql.trim().is_empty()) {
            return Err(self.fail(None, format!("jobs.{name}.test_restore.queries[{i}].sql"), "empty query"));
        }
        Ok(())
    }

    fn command_env(&self, names: &[String]) -> Result<()> {
        let key = "alerts.command_env".to_string();
        if let Some(i) = names.iter().position(|n| n.is_empty() || n.contains(['=', '\0'])) {
            return Err(self.fail(None, format!("{key}[{i}]"), "not a variable name"));
        }
        let never = |n: &String| NEVER_PASSED.iter().any(|p| n.starts_with(p));
        if let Some(n) = names.iter().find(|n| never(n)) {
            return Err(self.fail(None, key, format!("{n}: the repository password is never passed to a child")));
        }
        Ok(())
    }

    fn email(&self, email: &EmailConfig) -> Result<()> {
        let ca = email.ca_file.as_ref();
        let problem = if email.tls_mode.is_some() && email.starttls.is_some() {
            Some(("starttls", "give tls or the older starttls, not both".to_string()))
        } else if let Some(ca) = ca.filter(|ca| !ca.is_absolute()) {
            Some(("ca_file", format!("{} is not an absolute path", ca.display())))
        } else if ca.is_some() && email.tls() == SmtpTls::None {
            Some(("ca_file", "a CA file needs TLS: drop it or set tls = \"starttls\" or \"implicit\"".to_string()))
        } else {
            None
        };
        match problem {
            Some((key, why)) => Err(self.fail(None, format!("alerts.email.{key}"), why)),
            None => Ok(()),
        }
    }
}

/// The line (from 1) of a byte offset in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Names that are safe as one path component everywhere.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
