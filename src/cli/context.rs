//! What every command starts from: the global flags, the config file (read and checked once, here), and the
//! ways to open the repository they describe. Flags and environment variables win over the config file.

use std::path::{Path, PathBuf};

use clap::Args;

use super::password::PasswordSource;
use crate::children::ChildEnv;
use crate::config::Config;
use crate::repo::RegionSpec;
use crate::repo::Repository;
use crate::repo::catalog::default_cache_dir;
use crate::repo::session::{OpenOptions, Session};
use crate::storage::Location;

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub(crate) struct GlobalArgs {
    /// The config file (repository, password, jobs); flags and environment variables override it
    #[arg(short = 'c', long, env = "GUMVAULT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository URL: a path, file:///abs/path, s3://bucket/prefix?endpoint=URL&region=R, or memory://
    #[arg(short = 'r', long = "repo", env = "GUMVAULT_REPO", global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the password from this file
    #[arg(long, env = "GUMVAULT_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use what it prints as the password
    #[arg(long, env = "GUMVAULT_PASSWORD_COMMAND", global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// A region as NAME=URL (repeatable). With `init`: the regions of the new repository, each a complete copy.
    /// Otherwise: replaces the stored URL of that region for this command
    #[arg(long = "region", value_name = "NAME=URL", global = true, value_parser = parse_region)]
    pub regions: Vec<RegionSpec>,
    /// Regions that must hold every new object before a write counts as done (default: all; `init` stores it)
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_regions: Option<u32>,
    /// Read from these regions first, in this order (repeatable; default: the order given at init)
    #[arg(long = "prefer-region", value_name = "NAME", global = true)]
    pub prefer_regions: Vec<String>,
    /// Use only the location given with -r/--repo, not the other regions the repository lists (recovery)
    #[arg(long, global = true)]
    pub single_region: bool,
    /// Directory of the local catalog cache
    #[arg(long, env = "GUMVAULT_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Open the repository read-only as it was at TIME, from object versions (a versioned S3 bucket): to
    /// recover after objects were deleted or overwritten. TIME is RFC 3339 or e.g. "3 hours ago". Works with
    /// snapshots, ls, restore, dump, check, diff, stats, regions, wal-fetch, and sync --into URL (copy the view into
    /// a fresh bucket)
    #[arg(long, global = true, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Memory that prune and check may give the index, and stats ID its sorted ids (e.g. 512MiB, 4GiB; default
    /// 1GiB, about 25 million blobs). Beyond it they are sorted in private scratch files in the cache directory
    #[arg(long, env = "GUMVAULT_MEMORY_BUDGET", global = true, value_name = "SIZE", value_parser = super::format::parse_bytes)]
    pub memory_budget: Option<u64>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and warnings; no progress bar
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The resolved command line: the global flags and the config file they name, parsed once.
pub(crate) struct Context {
    /// The flags as given.
    pub args: GlobalArgs,
    /// The config file, when one is given with --config or GUMVAULT_CONFIG.
    pub config: Option<Config>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Print only errors and warnings.
    pub quiet: bool,
}

impl Context {
    /// Reads and checks the config file (when one is named); everything else is resolved from it on demand.
    pub fn new(args: &GlobalArgs) -> anyhow::Result<Context> {
        let config = args.config.as_deref().map(Config::load).transpose()?;
        Ok(Context { args: args.clone(), config, json: args.json, quiet: args.quiet })
    }

    /// The config file's path, when one was given.
    pub fn config_path(&self) -> Option<&Path> {
        self.args.config.as_deref()
    }

    /// The config file, which this command needs.
    pub fn require_config(&self) -> anyhow::Result<&Config> {
        self.config.as_ref().ok_or_else(|| {
            anyhow::anyhow!("this command needs a config file: pass --config FILE or set GUMVAULT_CONFIG (example: docs/gumvault.example.toml)")
        })
    }

    /// The config file read again from disk (a long-running endpoint shows edits without a restart).
    pub fn reload_config(&self) -> crate::Result<Config> {
        match self.config_path() {
            Some(path) => Config::load(path),
            None => Err(crate::Error::InvalidInput("no config file: pass --config FILE or set GUMVAULT_CONFIG".into())),
        }
    }

    fn repository_config(&self) -> Option<&crate::config::RepositoryConfig> {
        self.config.as_ref().map(|c| &c.repository)
    }

    /// The repository URL: -r/--repo or GUMVAULT_REPO, else the config file's `repository.url`.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(r) = &self.args.repo {
            return Ok(r.clone());
        }
        if let Some(url) = self.repository_config().and_then(|c| c.url.clone()) {
            return Ok(url);
        }
        anyhow::bail!(
            "no repository given: pass -r/--repo URL, set GUMVAULT_REPO, or set repository.url in the config file"
        )
    }

    /// Where the password comes from: flags and environment, then the config file.
    pub fn password_source(&self) -> PasswordSource {
        let config = self.repository_config();
        PasswordSource {
            file: self.args.password_file.clone(),
            command: self.args.password_command.clone().or_else(|| config.and_then(|c| c.password_command.clone())),
            config: config.and_then(|c| c.password.clone()),
            child_env: self.child_env(),
        }
    }

    /// The environment of the programs this command starts: without the secrets of the config (when there is
    /// one), the repository password and AWS keys.
    pub fn child_env(&self) -> ChildEnv {
        self.config.as_ref().map(Config::child_env).unwrap_or_default()
    }

    /// Directory of the local catalog.
    pub fn cache_dir(&self) -> PathBuf {
        self.args
            .cache_dir
            .clone()
            .or_else(|| self.repository_config().and_then(|c| c.cache_dir.clone()))
            .unwrap_or_else(default_cache_dir)
    }

    /// The memory budget of prune, check and stats, spilling into the cache directory.
    pub fn memory_budget(&self) -> crate::repo::blob_index::MemoryBudget {
        crate::repo::blob_index::MemoryBudget {
            bytes: self.args.memory_budget.unwrap_or(crate::repo::blob_index::MemoryBudget::DEFAULT_BYTES),
            scratch: self.cache_dir(),
        }
    }

    /// Region overrides: --region flags, then the config file's `repository.regions`.
    pub fn region_specs(&self) -> Vec<RegionSpec> {
        let mut specs = self.args.regions.clone();
        for r in self.repository_config().map(|c| c.regions.as_slice()).unwrap_or_default() {
            if !specs.iter().any(|s| s.name == r.name) {
                specs.push(RegionSpec { name: r.name.clone(), url: r.url.clone() });
            }
        }
        specs
    }

    /// --min-regions, else the config file's `repository.min_regions`.
    pub fn min_regions(&self) -> Option<u32> {
        self.args.min_regions.or(self.repository_config().and_then(|c| c.min_regions))
    }

    /// Where the repository is and which regions to use: the URL given (else the first region named).
    pub fn open_options(&self) -> anyhow::Result<OpenOptions> {
        let url = match self.url() {
            Ok(u) => u,
            Err(e) => match self.region_specs().first() {
                Some(r) => r.url.clone(),
                None => return Err(e),
            },
        };
        let mut prefer = self.args.prefer_regions.clone();
        if prefer.is_empty() {
            prefer = self.repository_config().map(|c| c.prefer_regions.clone()).unwrap_or_default();
        }
        Ok(OpenOptions {
            url,
            regions: self.region_specs(),
            min_regions: self.min_regions().map(|n| n as usize),
            prefer,
            single_region: self.args.single_region,
            cache_dir: self.cache_dir(),
            rebuild: Vec::new(),
            as_of: self.as_of()?,
        })
    }

    /// The time of `--as-of`, read against the real clock (object versions carry the bucket's real times).
    pub fn as_of(&self) -> anyhow::Result<Option<jiff::Timestamp>> {
        let tz = jiff::tz::TimeZone::system();
        Ok(self.args.as_of.as_deref().map(|s| crate::time::parse_time(s, jiff::Timestamp::now(), &tz)).transpose()?)
    }

    /// Opens the repository (asking for the password) without touching the catalog.
    pub fn open_repo(&self) -> anyhow::Result<Repository> {
        let opts = self.open_options()?;
        let password = self.password_source().get(false)?;
        Ok(Repository::open_with(&opts, &password)?)
    }

    /// [`Context::open_repo`] with the library's error, for operations that tell errors apart.
    pub fn open_repo_library(&self) -> crate::Result<Repository> {
        self.open_repo().map_err(into_library_error)
    }

    /// Opens the repository and brings its catalog up to date.
    pub fn open(&self) -> anyhow::Result<Session> {
        self.open_rebuilding(&[])
    }

    /// [`Context::open`] for commands that only list or select snapshots: the catalog's index is not brought up
    /// to date (on a new machine, it is not read at all).
    pub fn open_for_snapshots(&self) -> anyhow::Result<Session> {
        let opts = self.open_options()?;
        let password = self.password_source().get(false)?;
        let session = Session::open_for_snapshots(&opts, &password)?;
        for w in &session.catalog.warnings {
            eprintln!("gumvault: warning: {w}");
        }
        Ok(session)
    }

    /// [`Context::open`], creating the directories of the regions in `rebuild` when they are missing.
    pub fn open_rebuilding(&self, rebuild: &[String]) -> anyhow::Result<Session> {
        let mut opts = self.open_options()?;
        opts.rebuild = rebuild.to_vec();
        let password = self.password_source().get(false)?;
        let session = Session::open(&opts, &password)?;
        for w in &session.catalog.warnings {
            eprintln!("gumvault: warning: {w}");
        }
        Ok(session)
    }
}

impl crate::daemon::refresh::Source for Context {
    fn open(&self) -> crate::Result<Session> {
        Context::open(self).map_err(into_library_error)
    }

    fn reload_config(&self) -> crate::Result<Config> {
        Context::reload_config(self)
    }
}

/// The library error inside an error of this command line, or its message as one.
fn into_library_error(e: anyhow::Error) -> crate::Error {
    match e.downcast::<crate::Error>() {
        Ok(inner) => inner,
        Err(other) => crate::Error::InvalidInput(format!("{other:#}")),
    }
}

/// Parses `NAME=URL`.
fn parse_region(s: &str) -> crate::Result<RegionSpec> {
    let usage = |m: String| crate::Error::InvalidInput(m);
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| usage("expected NAME=URL, e.g. eu=s3://bucket/prefix?region=eu-west-1".into()))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(usage(format!("invalid region name {name:?} (letters, digits, '-' and '_')")));
    }
    Location::parse(url)?;
    Ok(RegionSpec { name: name.to_string(), url: url.to_string() })
}

/// False when the daemon runs this command and records the run itself (`GUMVAULT_RECORD_RUNS=0`).
pub(crate) fn records_runs() -> bool {
    std::env::var("GUMVAULT_RECORD_RUNS").map(|v| v != "0").unwrap_or(true)
}
