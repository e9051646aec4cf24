//! `init`, `snapshots`, `key`, `catalog`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use super::password;
use crate::exit;
use crate::format::chunker::ChunkerParams;
use crate::repo::KdfParams;
use crate::repo::catalog::Catalog;
use crate::repo::{InitOptions, Repository};

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// zstd compression level for new data (0 = off; 1 fastest, 3 default, up to 19)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compression: i32,
    /// Argon2id memory per password check, in MiB (default 64)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: u32,
    /// Argon2id passes (default 3)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub kdf_iterations: u32,
    /// Add or replace a chunker profile: NAME=MIN/AVG/MAX with sizes like 4K, 16K, 1M (repeatable).
    /// Defaults: files=256K/1M/4M, stream=2K/8K/64K, pages=8K/32K/256K (PostgreSQL base backups)
    #[arg(long = "chunker-profile", value_name = "NAME=MIN/AVG/MAX", value_parser = parse_profile)]
    pub chunker_profiles: Vec<(String, ChunkerParams)>,
    /// Target size of data packs in MiB (default 16; smaller packs mean more objects, larger ones bigger reads)
    #[arg(long, default_value_t = 16, value_name = "MiB", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub pack_size: u32,
    /// S3 Object Lock: lock every object for this long (MODE:DURATION, e.g. compliance:35d or governance:30d).
    /// Every bucket must have Object Lock enabled. Default: repository.object_lock in the config file
    #[arg(long, value_name = "MODE:DURATION", value_parser = parse_lock)]
    pub object_lock: Option<crate::format::repo_config::ObjectLock>,
    /// S3 storage class of data packs (STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, …); config,
    /// keys, index, snapshots and tree packs stay in the default class. GLACIER and DEEP_ARCHIVE are refused
    #[arg(long, value_name = "CLASS", value_parser = parse_class)]
    pub storage_class: Option<String>,
}

fn parse_lock(s: &str) -> Result<crate::format::repo_config::ObjectLock, String> {
    crate::format::repo_config::ObjectLock::parse(s)
}

fn parse_class(s: &str) -> Result<String, String> {
    crate::format::repo_config::check_storage_class(s).map(|()| s.to_string())
}

/// Parses `NAME=MIN/AVG/MAX`.
fn parse_profile(s: &str) -> crate::Result<(String, ChunkerParams)> {
    let usage = |m: String| crate::Error::InvalidInput(m);
    let (name, sizes) =
        s.split_once('=').ok_or_else(|| usage("expected NAME=MIN/AVG/MAX, e.g. stream=2K/8K/64K".into()))?;
    let parts: Vec<u32> = sizes.split('/').map(parse_size).collect::<Result<_, _>>()?;
    let [min_size, avg_size, max_size] = parts[..] else {
        return Err(usage("expected three sizes MIN/AVG/MAX".into()));
    };
    let p = ChunkerParams { min_size, avg_size, max_size };
    p.validate().map_err(|e| usage(e.to_string()))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(usage(format!("invalid profile name {name:?}")));
    }
    Ok((name.to_string(), p))
}

/// `4096`, `16K`, `1M` (binary units), as a chunk size.
fn parse_size(s: &str) -> crate::Result<u32> {
    let n = super::format::parse_bytes(s)?;
    u32::try_from(n).map_err(|_| crate::Error::InvalidInput(format!("size {s:?} is too large")))
}

impl InitArgs {
    pub fn kdf(&self) -> KdfParams {
        KdfParams { memory_kib: self.kdf_memory * 1024, iterations: self.kdf_iterations, parallelism: 1 }
    }
}

pub(crate) fn init(g: &Context, a: &InitArgs) -> anyhow::Result<i32> {
    let regions = g.region_specs();
    let min = g.min_regions();
    let (location, url) = if regions.is_empty() {
        if min.is_some_and(|n| n > 1) {
            anyhow::bail!("--min-regions needs several regions: give them with --region NAME=URL");
        }
        let url = g.url()?;
        (url.clone(), url)
    } else {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = regions.iter().find(|r| !seen.insert(r.name.clone())) {
            anyhow::bail!("region {} is given twice", dup.name);
        }
        (String::new(), regions.iter().map(|r| format!("{}={}", r.name, r.url)).collect::<Vec<_>>().join(" "))
    };
    let url = url.as_str();
    let password = g.password_source().get_new()?;
    let mut opts = InitOptions {
        kdf: a.kdf(),
        compression_level: a.compression,
        pack_size: a.pack_size << 20,
        ..Default::default()
    };
    opts.chunker_profiles.extend(a.chunker_profiles.iter().cloned());
    opts.regions = regions;
    opts.min_regions = min;
    let config = g.config.as_ref().map(|c| &c.repository);
    opts.object_lock = a.object_lock.or(config.and_then(|c| c.object_lock));
    opts.storage_class = a.storage_class.clone().or(config.and_then(|c| c.storage_class.clone()));
    let repo = Repository::create(&location, &password, &opts)?;
    if g.json {
        println!("{}", json!({ "id": repo.id(), "url": url }));
    } else if !g.quiet {
        println!("created repository {} at {url}", &repo.id()[..8]);
        if let Some(lock) = repo.object_lock() {
            println!(
                "Every object is locked ({lock}); prune extends the locks of what is still needed. See `gumvault policy print`."
            );
        }
        println!("Keep the password safe: without it the data cannot be read by anyone, including you.");
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub(crate) struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub(crate) fn snapshots(g: &Context, a: &SnapshotsArgs) -> anyhow::Result<i32> {
    let s = g.open_for_snapshots()?;
    let snaps = match a.filter.at_time()? {
        Some(_) => vec![a.filter.pick(&s.catalog, "latest")?],
        None => a.filter.filter().apply(&s.catalog)?,
    };
    if g.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|e| {
                let sn = &e.snapshot;
                json!({
                    "id": e.id.to_hex(), "short_id": e.id.short(), "time": sn.time.to_string(), "host": sn.host,
                    "tags": sn.tags, "paths": sn.paths, "tree": sn.tree.to_hex(),
                    "parent": sn.parent.map(|p| p.to_hex()), "incomplete": sn.incomplete,
                    "size": sn.summary.total_bytes, "summary": sn.summary, "base_backups": sn.base_backups,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(exit::OK);
    }
    println!("{:<10} {:<20} {:<16} {:<16} {:>10}  paths", "id", "time", "host", "tags", "size");
    for e in &snaps {
        let sn = &e.snapshot;
        let mark = if sn.incomplete { " (incomplete)" } else { "" };
        println!(
            "{:<10} {:<20} {:<16} {:<16} {:>10}  {}{mark}",
            e.id.short(),
            format::local_time(&sn.time),
            sn.host,
            sn.tags.join(","),
            format::bytes(sn.summary.total_bytes),
            sn.paths.join(" "),
        );
    }
    println!("{} snapshots", snaps.len());
    Ok(exit::OK)
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeyCommand {
    /// Add a password (from GUMVAULT_NEW_PASSWORD, --new-password-file, or a prompt)
    Add(NewPasswordArgs),
    /// List the key slots
    List,
    /// Remove a key slot by id (not the one used to open the repository)
    Remove {
        /// Key id or a unique prefix of it
        id: String,
    },
    /// Change the password used to open the repository
    Passwd(NewPasswordArgs),
}

#[derive(Args, Debug)]
pub(crate) struct NewPasswordArgs {
    /// Read the new password from this file
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<std::path::PathBuf>,
    /// Argon2id memory for the new key, in MiB
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: u32,
}

pub(crate) fn key(g: &Context, cmd: &KeyCommand) -> anyhow::Result<i32> {
    let mut repo = g.open_repo()?;
    let kdf_of = |a: &NewPasswordArgs| KdfParams { memory_kib: a.kdf_memory * 1024, ..KdfParams::default() };
    match cmd {
        KeyCommand::Add(a) => {
            let pw = password::new_password(a.new_password_file.as_deref())?;
            let id = repo.add_key(&pw, kdf_of(a))?;
            println!("added key {id}");
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("  {:<32} {:<20} {:<16} user", "id", "created", "host");
                for k in keys {
                    let mark = if k.current { "*" } else { " " };
                    println!(
                        "{mark} {:<32} {:<20} {:<16} {}",
                        k.id,
                        format::local_time(&k.created),
                        k.host,
                        k.username
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(id)?;
            println!("removed key {removed}");
        }
        KeyCommand::Passwd(a) => {
            let pw = password::new_password(a.new_password_file.as_deref())?;
            let url = g.open_options()?.url;
            let id = repo.change_password(&pw, kdf_of(a))?;
            // The old key file is gone from the repository: its copy kept here goes too.
            crate::repo::key_hint::forget(&g.cache_dir(), &url);
            println!("password changed (new key {id})");
        }
    }
    Ok(exit::OK)
}

#[derive(Subcommand, Debug)]
pub(crate) enum CatalogCommand {
    /// Drop the local catalog and rebuild it from the repository
    Rebuild,
}

pub(crate) fn catalog(g: &Context, cmd: &CatalogCommand) -> anyhow::Result<i32> {
    match cmd {
        CatalogCommand::Rebuild => {
            let repo = g.open_repo()?;
            let mut cat = Catalog::open(&g.cache_dir(), &repo)?;
            cat.rebuild(&repo)?;
            let (packs, blobs, bytes) = cat.totals()?;
            let snaps = cat.snapshots()?.len();
            if g.json {
                println!("{}", json!({ "snapshots": snaps, "packs": packs, "blobs": blobs, "stored_bytes": bytes }));
            } else {
                println!("catalog rebuilt: {snaps} snapshots, {packs} packs, {blobs} blobs, {}", format::bytes(bytes));
            }
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse() {
        let (n, p) = parse_profile("db=4K/16KiB/128K").unwrap();
        assert_eq!(n, "db");
        assert_eq!(p, ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 131072 });
        assert!(parse_profile("db=4K/15K/128K").is_err(), "average must be a power of two");
        assert!(parse_profile("db=4K/16K").is_err());
        assert!(parse_profile("=4K/16K/64K").is_err());
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
    }
}
