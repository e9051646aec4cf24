//! `init`, `snapshots`, `key`, `catalog`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{FilterArgs, GlobalArgs, format, password};
use crate::catalog::Catalog;
use crate::crypto::KdfParams;
use crate::exit;
use crate::repo::{InitOptions, Repository};
use crate::storage::Storage;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// zstd compression level for new data (0 = off; 1 fastest, 3 default, up to 19)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compression: i32,
    /// Argon2id memory per password check, in MiB (default 64)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: u32,
    /// Argon2id passes (default 3)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub kdf_iterations: u32,
}

impl InitArgs {
    pub fn kdf(&self) -> KdfParams {
        KdfParams { memory_kib: self.kdf_memory * 1024, iterations: self.kdf_iterations, parallelism: 1 }
    }
}

pub fn init(g: &GlobalArgs, a: &InitArgs) -> anyhow::Result<i32> {
    let url = g.url()?;
    let storage = Storage::open_url(url)?;
    let password = g.password_source().get(true)?;
    let opts = InitOptions { kdf: a.kdf(), compression_level: a.compression, ..Default::default() };
    let repo = Repository::init(storage, &password, &opts)?;
    if g.json {
        println!("{}", json!({ "id": repo.config.id, "url": url }));
    } else if !g.quiet {
        println!("created repository {} at {url}", &repo.config.id[..8]);
        println!("Keep the password safe: without it the data cannot be read by anyone, including you.");
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn snapshots(g: &GlobalArgs, a: &SnapshotsArgs) -> anyhow::Result<i32> {
    let s = g.open()?;
    let snaps = a.filter.filter().apply(&s.catalog)?;
    if g.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|e| {
                let sn = &e.snapshot;
                json!({
                    "id": e.id.to_hex(), "short_id": e.id.short(), "time": sn.time.to_string(), "host": sn.host,
                    "tags": sn.tags, "paths": sn.paths, "tree": sn.tree.to_hex(),
                    "parent": sn.parent.map(|p| p.to_hex()), "incomplete": sn.incomplete,
                    "size": sn.summary.total_bytes, "summary": sn.summary,
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
pub enum KeyCommand {
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
pub struct NewPasswordArgs {
    /// Read the new password from this file
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<std::path::PathBuf>,
    /// Argon2id memory for the new key, in MiB
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: u32,
}

pub fn key(g: &GlobalArgs, cmd: &KeyCommand) -> anyhow::Result<i32> {
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
            let id = repo.change_password(&pw, kdf_of(a))?;
            println!("password changed (new key {id})");
        }
    }
    Ok(exit::OK)
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Drop the local catalog and rebuild it from the repository
    Rebuild,
}

pub fn catalog(g: &GlobalArgs, cmd: &CatalogCommand) -> anyhow::Result<i32> {
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
