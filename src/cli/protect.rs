//! `gumvault lock extend` and `gumvault policy print`: keeping Object Lock retention ahead, and the IAM policies
//! of the two roles that keep an intruder on the application server from destroying the backups.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::context::Context;
use super::format;
use crate::exit;
use crate::storage::Location;

#[derive(Subcommand, Debug)]
pub(crate) enum LockCommand {
    /// Extend the Object Lock retention of everything the repository still needs to now + the lock period
    /// (prune does this too, at its end). Packs prune marked obsolete are left to run out
    Extend,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Print example IAM policies for the configured repository's bucket and prefix: a backup role that can
    /// only add (backup, run, check), and a maintenance role (forget, prune, sync, lock extend)
    Print(PolicyArgs),
}

#[derive(Args, Debug)]
pub(crate) struct PolicyArgs {
    /// Only the backup role's policy (no delete, no shortening of locks)
    #[arg(long, conflicts_with = "maintenance")]
    pub backup: bool,
    /// Only the maintenance role's policy
    #[arg(long)]
    pub maintenance: bool,
}

pub(crate) fn lock(g: &Context, c: &LockCommand) -> anyhow::Result<i32> {
    let LockCommand::Extend = c;
    let repo = g.open_repo()?;
    if repo.object_lock().is_none() {
        // Nothing to do (the backup side of a split daemon runs this on every repository).
        if g.json {
            println!("{}", json!({ "lock": null }));
        } else if !g.quiet {
            println!(
                "this repository has no Object Lock rule (set at init: --object-lock compliance:35d): nothing to extend"
            );
        }
        return Ok(exit::OK);
    }
    let report = crate::ops::lock::extend(&repo, crate::time::now())?;
    if g.json {
        println!("{}", json!({ "lock": report }));
    } else if !g.quiet {
        let until = report.until.map(|t| format::local_time(&t)).unwrap_or_default();
        println!("extended the lock of {} objects to {until}", report.extended);
        if report.obsolete_left > 0 {
            println!(
                "{} packs marked obsolete by prune are left to run out, then prune deletes them",
                report.obsolete_left
            );
        }
    }
    Ok(exit::OK)
}

pub(crate) fn policy(g: &Context, c: &PolicyCommand) -> anyhow::Result<i32> {
    let PolicyCommand::Print(a) = c;
    let mut urls: Vec<String> = g.region_specs().into_iter().map(|r| r.url).collect();
    if urls.is_empty() {
        urls.push(g.url()?);
    }
    let mut places = Vec::new();
    for url in &urls {
        match Location::parse(url)? {
            Location::S3 { bucket, prefix, .. } => places.push((bucket, prefix)),
            _ => eprintln!("gumvault: note: {url} is not an S3 bucket; IAM policies do not apply to it"),
        }
    }
    if places.is_empty() {
        anyhow::bail!("the repository has no S3 bucket: IAM policies are for s3:// repositories");
    }
    let lock_days = g.config.as_ref().and_then(|c| c.repository.object_lock).map(|l| l.period_secs.div_ceil(86_400));
    let show = |p: Value| serde_json::to_string_pretty(&p).expect("policies serialize");
    match (a.backup, a.maintenance) {
        (true, _) => println!("{}", show(backup_policy(&places, lock_days))),
        (_, true) => println!("{}", show(maintenance_policy(&places))),
        _ => {
            println!("# Backup role (backup, run, check): adds objects, never deletes or shortens a lock");
            println!("{}", show(backup_policy(&places, lock_days)));
            println!("\n# Maintenance role (forget, prune, sync, lock extend, --as-of recovery)");
            println!("{}", show(maintenance_policy(&places)));
        }
    }
    if lock_days.is_none() && !a.maintenance {
        eprintln!(
            "gumvault: note: set repository.object_lock in the config file to cap, in the backup policy, how long a lock the backup role may set"
        );
    }
    Ok(exit::OK)
}

/// `arn:aws:s3:::bucket` and `arn:aws:s3:::bucket/prefix/*` of every place.
fn arns(places: &[(String, String)]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let buckets = places.iter().map(|(b, _)| format!("arn:aws:s3:::{b}")).collect();
    let objects = places
        .iter()
        .map(|(b, p)| if p.is_empty() { format!("arn:aws:s3:::{b}/*") } else { format!("arn:aws:s3:::{b}/{p}/*") })
        .collect();
    let prefixes = places
        .iter()
        .flat_map(|(_, p)| if p.is_empty() { vec!["*".to_string()] } else { vec![p.clone(), format!("{p}/*")] })
        .collect();
    (buckets, objects, prefixes)
}

/// What the machine that runs backups may do: list and read the repository, add objects with a lock, extend
/// a lock — and explicitly nothing that destroys: no delete of objects or versions, no bypass of governance
/// locks, no change to the bucket's versioning, lock, lifecycle or policy, no lock longer than the rule's.
fn backup_policy(places: &[(String, String)], lock_days: Option<u64>) -> Value {
    let (buckets, objects, prefixes) = arns(places);
    let all: Vec<String> = buckets.iter().chain(&objects).cloned().collect();
    let mut statements = vec![
        json!({ "Sid": "ListTheRepository", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": buckets,
                "Condition": { "StringLike": { "s3:prefix": prefixes } } }),
        json!({ "Sid": "ReadBucketSettings", "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"],
                "Resource": buckets }),
        json!({ "Sid": "ReadAndAdd", "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectRetention",
                           "s3:AbortMultipartUpload"],
                "Resource": objects }),
        json!({ "Sid": "NeverDestroy", "Effect": "Deny",
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
                           "s3:PutObjectLegalHold", "s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration",
                           "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                           "s3:DeleteBucket"],
                "Resource": all }),
    ];
    if let Some(days) = lock_days {
        statements.push(json!({ "Sid": "NoLockLongerThanTheRule", "Effect": "Deny",
            "Action": ["s3:PutObject", "s3:PutObjectRetention"], "Resource": objects,
            "Condition": { "NumericGreaterThan": { "s3:object-lock-remaining-retention-days": (days + 1).to_string() } } }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// What maintenance may do besides: delete objects and (once their lock has run out) old versions, list
/// versions and read them (for --as-of). Still no bypass of locks and no change to the bucket's settings.
fn maintenance_policy(places: &[(String, String)]) -> Value {
    let (buckets, objects, prefixes) = arns(places);
    json!({ "Version": "2012-10-17", "Statement": [
        { "Sid": "ListTheRepository", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
          "Resource": buckets, "Condition": { "StringLike": { "s3:prefix": prefixes } } },
        { "Sid": "ReadBucketSettings", "Effect": "Allow",
          "Action": ["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"],
          "Resource": buckets },
        { "Sid": "Maintain", "Effect": "Allow",
          "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectRetention",
                     "s3:GetObjectRetention", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload"],
          "Resource": objects },
        { "Sid": "NeverWeakenTheBucket", "Effect": "Deny",
          "Action": ["s3:BypassGovernanceRetention", "s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration",
                     "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:DeleteBucket"],
          "Resource": buckets.iter().chain(&objects).cloned().collect::<Vec<_>>() }
    ]})
}
