//! The sources of a job: `[[jobs.NAME.sources]]` with `kind = "postgres" | "postgres-physical" | "s3" | "redis" |
//! "files" | "env"`.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Glob, Secret};

/// One source of a job. Each becomes a top-level directory `/NAME` of the job's snapshot.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSpec {
    /// `kind = "postgres"`: a pg_dump of one database.
    Postgres(PostgresSource),
    /// `kind = "postgres-physical"`: a base backup of a whole PostgreSQL cluster, for point-in-time recovery.
    #[serde(rename = "postgres-physical")]
    PostgresPhysical(PhysicalSource),
    /// `kind = "s3"`: the objects of an S3 bucket (and prefix).
    S3(S3Source),
    /// `kind = "redis"`: an RDB snapshot of a Redis server.
    Redis(RedisSource),
    /// `kind = "files"`: files and directories of this machine.
    Files(FilesSource),
    /// `kind = "env"`: environment variables and, optionally, a `.env` file.
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

/// `kind = "postgres"`: a PostgreSQL database, dumped with pg_dump to `/NAME/dump.sql` (or `/NAME/dump.pgdump`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// If true, a failing source is reported and left out of the snapshot instead of failing the run (default false).
    #[serde(default)]
    pub optional: bool,
    /// `postgres://user:password@host:port/db` or a reference to it; default `env:DATABASE_URL`.
    pub url: Option<Secret>,
    /// `plain` (default) or `custom`: the dump's format.
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
    /// `physical`: rows as pg_dump writes them, in the table's storage order (the default).
    #[default]
    Physical,
    /// `primary-key`: each table's rows sorted by its primary key, so unchanged rows keep their place.
    PrimaryKey,
}

/// `kind = "postgres-physical"`: a base backup of a PostgreSQL cluster taken with `pg_basebackup` (tar format,
/// streamed: never staged on disk), saved as the cluster's data directory `/NAME/...`, file by file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalSource {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// If true, a failing source is reported and left out of the snapshot instead of failing the run (default false).
    #[serde(default)]
    pub optional: bool,
    /// `postgres://user:password@host:port/` of a user with the REPLICATION attribute, or a reference to it;
    /// default `env:DATABASE_URL`. The password reaches pg_basebackup in `PGPASSWORD`, never on its command line.
    pub url: Option<Secret>,
    /// The pg_basebackup program (default: `pg_basebackup` on PATH). `psql` and, for test restores, `pg_ctl` are
    /// taken from the same directory.
    pub pg_basebackup: Option<PathBuf>,
    /// `fetch` (default): the WAL written during the backup is inside it (`-X fetch`), so the backup restores on
    /// its own; `archive`: no WAL inside (`-X none`), recovery takes it from the WAL archive (`wal-push`).
    #[serde(default)]
    pub wal: WalMode,
}

/// Where a base backup's own WAL comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalMode {
    /// `-X fetch`: the WAL from the backup's start to its end is fetched at its end and stored with it.
    #[default]
    Fetch,
    /// `-X none`: only the data files; the WAL archive must hold the backup's WAL.
    Archive,
}

/// `kind = "s3"`: a bucket (and prefix), each object saved as `/NAME/<key>` with its metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// If true, a failing source is reported and left out of the snapshot instead of failing the run (default false).
    #[serde(default)]
    pub optional: bool,
    /// `s3://bucket/prefix?endpoint=URL&region=R`.
    pub url: String,
    /// Keep only objects whose key (below the prefix) matches one of these globs; empty keeps everything.
    #[serde(default)]
    pub include: Vec<Glob>,
    /// Leave out objects whose key matches one of these globs (without `/` a glob matches the file name).
    #[serde(default)]
    pub exclude: Vec<Glob>,
    /// Credentials (default: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
    pub access_key_id: Option<Secret>,
    /// The secret key that goes with `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// Objects downloaded at once (default 16).
    pub concurrency: Option<usize>,
}

/// `kind = "redis"`: a Redis server, saved as an RDB snapshot `/NAME/dump.rdb` taken with `redis-cli --rdb`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSource {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// Redis is a cache: optional unless said otherwise.
    #[serde(default = "yes")]
    pub optional: bool,
    /// `redis://[:password@]host:port` or a reference to it; default `redis://127.0.0.1:6379`.
    pub url: Option<Secret>,
    /// The redis-cli program (default: `redis-cli` on PATH).
    pub redis_cli: Option<PathBuf>,
}

/// `kind = "files"`: local files and directories, saved under `/NAME` with their full paths.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// If true, a failing source is reported and left out of the snapshot instead of failing the run (default false).
    #[serde(default)]
    pub optional: bool,
    /// Absolute paths of files and directories.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns, as `backup --exclude`.
    #[serde(default)]
    pub exclude: Vec<Glob>,
}

/// `kind = "env"`: environment variables, saved as `/NAME/variables.env` (mode 0600).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSource {
    /// The source's name: its top-level directory `/NAME` in the job's snapshot.
    pub name: String,
    /// If true, a failing source is reported and left out of the snapshot instead of failing the run (default false).
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

fn yes() -> bool {
    true
}

impl SourceSpec {
    /// The source's name (its directory in the snapshot).
    pub fn name(&self) -> &str {
        match self {
            SourceSpec::Postgres(s) => &s.name,
            SourceSpec::PostgresPhysical(s) => &s.name,
            SourceSpec::S3(s) => &s.name,
            SourceSpec::Redis(s) => &s.name,
            SourceSpec::Files(s) => &s.name,
            SourceSpec::Env(s) => &s.name,
        }
    }

    /// The source's `kind` as written in the config: `postgres`, `postgres-physical`, `s3`, `redis`, `files` or `env`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Postgres(_) => "postgres",
            SourceSpec::PostgresPhysical(_) => "postgres-physical",
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
            SourceSpec::PostgresPhysical(s) => s.optional,
            SourceSpec::S3(s) => s.optional,
            SourceSpec::Redis(s) => s.optional,
            SourceSpec::Files(s) => s.optional,
            SourceSpec::Env(s) => s.optional,
        }
    }
}
