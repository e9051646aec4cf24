//! `restore --source NAME --to-postgres URL`: a snapshot's database onto a server, which may be brand new.
//!
//! Plan, then execute. The plan looks at the target server (through its maintenance database, `postgres` or
//! `template1`) before anything is changed: which roles the database needs ([`DatabaseRecord`]) exist, which are
//! to be created, whether the database exists, what the connecting role may do; every refusal — a role that
//! cannot create databases or roles, a database that is not empty — comes before the first change. Then:
//! missing roles are created with their attributes, password hashes, settings, comments and memberships (never
//! altering a role that exists), missing tablespaces at their old locations, the database with its recorded
//! owner, encoding, locale (from template0), tablespace, connection limit and privileges; the dump is loaded in
//! one transaction (through the role [`Rewriter`](super::pg_rewrite::Rewriter) when roles change on the way in);
//! last, the database's settings, its roles' settings in it and its comment. When any step fails, what this
//! restore created (the database, tablespaces, roles) is dropped again.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::pg_conn::PgConn;
use super::pg_record::{AclItem, DatabaseRecord, Membership, RECORD_FILE, Role, Tablespace};
use super::pg_rewrite::{RewriteReport, RoleRules};
use super::pg_sql::{self, ident, literal};
use crate::error::{Error, Result};

/// Which missing roles a restore creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolePolicy {
    /// Every role the database needs that the target lacks (the default).
    Create,
    /// None: privileges of missing roles are left out, and missing owners are an error.
    Skip,
}

/// Who owns what is restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerPolicy {
    /// The owners the backup recorded.
    Recorded,
    /// `--owner ROLE`: this role owns the database and everything in it.
    Role(String),
    /// `--no-owner`: the connecting role owns everything.
    Connecting,
}

/// How to restore onto a server.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// Which missing roles to create (default: `Create`, or `Skip` with `--owner`/`--no-owner`).
    pub roles: Option<RolePolicy>,
    /// Who owns what is restored.
    pub owner: OwnerPolicy,
    /// Drop everything in an existing database first.
    pub clean: bool,
}

/// What a restore onto a server did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TargetOutcome {
    /// The database, as a URL without password.
    pub database: String,
    /// True when the restore created it.
    pub database_created: bool,
    /// Its owner, when the restore created it.
    pub owner: Option<String>,
    /// Roles the restore created.
    pub roles_created: Vec<String>,
    /// Roles the database needs that were there already (left as they were).
    pub roles_existing: Vec<String>,
    /// Roles the database needs that the target lacks and that were not created.
    pub roles_missing: Vec<String>,
    /// Tablespaces the restore created.
    pub tablespaces_created: Vec<String>,
    /// Whether the backup held role passwords (`None`: the snapshot has no database.json).
    pub roles_with_passwords: Option<bool>,
    /// Bytes of the dump loaded.
    pub bytes: u64,
    /// What the operator should know: privileges left out, roles without passwords, properties left alone.
    pub notes: Vec<String>,
}

/// The target server, as found before anything is changed.
#[derive(Debug, Deserialize)]
struct Server {
    version: u32,
    user: String,
    superuser: bool,
    create_role: bool,
    create_db: bool,
    bootstrap_superuser: String,
    database_exists: bool,
    roles: HashSet<String>,
    member_of: HashSet<String>,
    memberships: HashSet<(String, String)>,
    tablespaces: HashSet<String>,
    trusted_extensions: HashSet<String>,
}

/// What the server is asked, in one query on the maintenance database.
const PROBE: &str = r#"SELECT json_build_object(
  'version', current_setting('server_version_num')::int, 'user', current_user,
  'superuser', r.rolsuper, 'create_role', r.rolcreaterole, 'create_db', r.rolcreatedb,
  'bootstrap_superuser', (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10),
  'database_exists', EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = {db}),
  'roles', (SELECT json_agg(rolname) FROM pg_catalog.pg_roles),
  'member_of', (SELECT json_agg(rolname) FROM pg_catalog.pg_roles WHERE pg_catalog.pg_has_role(current_user, oid, 'MEMBER')),
  'memberships', coalesce((SELECT json_agg(json_build_array(pg_catalog.pg_get_userbyid(roleid), pg_catalog.pg_get_userbyid(member)))
                  FROM pg_catalog.pg_auth_members), '[]'),
  'tablespaces', (SELECT json_agg(spcname) FROM pg_catalog.pg_tablespace),
  'trusted_extensions', coalesce((SELECT json_agg(DISTINCT name) FROM pg_catalog.pg_available_extension_versions v
                         WHERE (to_jsonb(v)->>'trusted')::bool), '[]')
)::text FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"#;

/// The maintenance database of `conn`'s server (`postgres`, else `template1`, else — on a managed server that
/// lets its user into nothing else — the target database itself) and what it says about the server.
fn probe(conn: &PgConn, database: &str) -> Result<(PgConn, Server)> {
    let sql = PROBE.replace("{db}", &literal(database));
    let mut first = None;
    for maintenance in ["postgres", "template1", database] {
        let maint = conn.with_database(maintenance);
        match maint.query(&sql) {
            Ok(rows) => {
                let text = rows.first().and_then(|r| r.first()).cloned().unwrap_or_default();
                let server = serde_json::from_str(&text).map_err(|e| {
                    Error::SourceFailed(format!("the server at {} answered unexpectedly: {e}", maint.display()))
                })?;
                return Ok((maint, server));
            }
            // Another database may let us in; any other failure (password, network) is the same everywhere.
            Err(e) if e.to_string().contains(&format!("database \"{maintenance}\"")) => {
                first.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(first.unwrap_or_else(|| Error::SourceFailed("no database of the server could be reached".into())))
}

/// What the restore will do, decided before anything is changed.
struct Plan {
    /// The database's name on the target.
    name: String,
    create_database: bool,
    owner: String,
    create: Vec<Role>,
    existing: Vec<String>,
    missing: Vec<String>,
    memberships: Vec<Membership>,
    tablespaces: Vec<(Tablespace, String)>,
    /// How roles map onto the target (every role there, the ones created, owners, renames).
    mapping: RoleRules,
    /// True when the dump must go through the rewriter (the mapping changes something).
    rewrite: bool,
    notes: Vec<String>,
}

/// Restores the dump of `source` (and its record) into `conn`'s database. `load` loads the dump with the rules
/// it is given into the database it is given.
pub fn restore(
    conn: &PgConn,
    record: Option<&DatabaseRecord>,
    opts: &TargetOptions,
    load: impl FnOnce(&PgConn, Option<RoleRules>) -> Result<(u64, Option<RewriteReport>)>,
) -> Result<TargetOutcome> {
    let name = match (conn.database(), record) {
        (n, _) if !n.is_empty() => n,
        (_, Some(r)) => r.database.name.clone(),
        (_, None) => return Err(Error::InvalidInput("the --to-postgres URL names no database".into())),
    };
    let target = conn.with_database(&name);
    let (maint, server) = probe(conn, &name)?;
    let plan = plan(record, &server, &name, opts)?;
    if server.database_exists && !opts.clean && !target.is_empty()? {
        return Err(Error::InvalidInput(format!(
            "database {} is not empty; restore into an empty database, or pass --clean to drop everything in it first",
            target.display()
        )));
    }
    let mut outcome = TargetOutcome {
        database: target.display(),
        roles_with_passwords: record.map(|r| r.roles_with_passwords),
        ..Default::default()
    };
    let done = execute(&plan, record, &maint, &server, &mut outcome).and_then(|_| {
        if server.database_exists && opts.clean {
            target.clean()?;
        }
        let (bytes, report) = load(&target, plan.rewrite.then(|| plan.mapping.clone()))?;
        outcome.bytes = bytes;
        finish(&plan, record, &maint)?;
        Ok(report)
    });
    match done {
        Ok(report) => Ok(describe(plan, outcome, report)),
        Err(e) => Err(undo(&plan, &maint, &outcome, e)),
    }
}

/// Decides what to create and how roles map, refusing before any change what cannot work.
fn plan(record: Option<&DatabaseRecord>, server: &Server, name: &str, opts: &TargetOptions) -> Result<Plan> {
    let owner_to = match &opts.owner {
        OwnerPolicy::Recorded => None,
        OwnerPolicy::Connecting => Some(server.user.clone()),
        OwnerPolicy::Role(r) if server.roles.contains(r) => Some(r.clone()),
        OwnerPolicy::Role(r) => {
            return Err(Error::InvalidInput(format!(
                "--owner {r}: role {r} does not exist on the target; create it first, or name a role that exists"
            )));
        }
    };
    if let Some(o) = &owner_to {
        may_act_as(server, o, &format!("give everything to {o}"))?;
    }
    let policy = opts.roles.unwrap_or(if owner_to.is_some() { RolePolicy::Skip } else { RolePolicy::Create });
    let empty = DatabaseRecord::empty(name);
    let rec = record.unwrap_or(&empty);
    let (create, existing, missing) = split_roles(rec, server, policy)?;
    if owner_to.is_none() {
        let owners: Vec<String> = rec.owners().into_iter().filter(|o| missing.contains(o)).collect();
        if !owners.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{} {} objects of the database and {} not exist on the target, and --roles skip creates none: create {}, leave out --roles skip, or give everything to one role with --owner ROLE or --no-owner",
                list(&owners),
                if owners.len() == 1 { "owns" } else { "own" },
                if owners.len() == 1 { "does" } else { "do" },
                if owners.len() == 1 { "it" } else { "them" }
            )));
        }
    }
    let create_database = !server.database_exists;
    let owner = owner_to.clone().unwrap_or_else(|| rec.database.owner.clone());
    if create_database {
        may_create_database(record, server, name, &owner)?;
    }
    let mut plan = Plan {
        name: name.to_string(),
        create_database,
        owner,
        existing,
        missing,
        memberships: Vec::new(),
        tablespaces: Vec::new(),
        mapping: RoleRules::default(),
        rewrite: false,
        notes: Vec::new(),
        create,
    };
    plan_globals(&mut plan, rec, server, record.is_some())?;
    (plan.mapping, plan.rewrite) = role_rules(&plan, record, server, owner_to);
    Ok(plan)
}

/// The recorded roles the target lacks, split into those to create and those left missing; the rest exist.
fn split_roles(
    rec: &DatabaseRecord,
    server: &Server,
    policy: RolePolicy,
) -> Result<(Vec<Role>, Vec<String>, Vec<String>)> {
    let (present, absent): (Vec<&Role>, Vec<&Role>) = rec.roles.iter().partition(|r| server.roles.contains(&r.name));
    let existing = present.iter().map(|r| r.name.clone()).collect();
    if policy == RolePolicy::Skip {
        return Ok((Vec::new(), existing, absent.iter().map(|r| r.name.clone()).collect()));
    }
    if !absent.is_empty() && !server.superuser && !server.create_role {
        return Err(Error::InvalidInput(format!(
            "role {} cannot create roles, and the database needs {} that the target lacks: connect as a superuser or a role with CREATEROLE, create them yourself, or pass --owner ROLE or --no-owner to give everything to one role",
            server.user,
            list(&absent.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        )));
    }
    let special: Vec<String> =
        absent.iter().filter(|r| r.superuser || r.replication || r.bypass_rls).map(|r| r.name.clone()).collect();
    if !special.is_empty() && !server.superuser {
        return Err(Error::InvalidInput(format!(
            "{} had SUPERUSER, REPLICATION or BYPASSRLS on the old server, and only a superuser can create such roles: connect as a superuser, or create them yourself",
            list(&special)
        )));
    }
    Ok((absent.into_iter().cloned().collect(), existing, Vec::new()))
}

/// Refuses when the connecting role may not make objects owned by `role` (`what` says what was asked).
fn may_act_as(server: &Server, role: &str, what: &str) -> Result<()> {
    if server.superuser || server.user == role || server.member_of.contains(role) {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "role {} cannot {what}: it is not a member of {role}; connect as {role} or as a superuser",
        server.user
    )))
}

/// Refuses, before any change, a database the connecting role may not create.
fn may_create_database(record: Option<&DatabaseRecord>, server: &Server, name: &str, owner: &str) -> Result<()> {
    let Some(rec) = record else {
        return Err(Error::InvalidInput(format!(
            "database {name} does not exist on the target, and the snapshot holds no {RECORD_FILE} (it was taken by an older gumvault) to create it from: create it yourself (createdb -O OWNER {name}) and run this again"
        )));
    };
    if !server.superuser && !server.create_db {
        return Err(Error::InvalidInput(format!(
            "role {} cannot create databases: connect as a superuser or a role with CREATEDB, or create database {name} yourself (owner {}, encoding {}, LC_COLLATE {}, LC_CTYPE {}, from template0) and run this again",
            server.user, rec.database.owner, rec.database.encoding, rec.database.lc_collate, rec.database.lc_ctype
        )));
    }
    if owner != server.user && !server.superuser && !server.member_of.contains(owner) {
        return Err(Error::InvalidInput(format!(
            "role {} cannot create a database owned by {owner}: it is not a member of {owner}; connect as a superuser, or pass --owner {} (or --no-owner) to own it yourself",
            server.user, server.user
        )));
    }
    Ok(())
}

/// Memberships to grant and tablespaces to create.
fn plan_globals(plan: &mut Plan, rec: &DatabaseRecord, server: &Server, recorded: bool) -> Result<()> {
    let created: HashSet<&str> = plan.create.iter().map(|r| r.name.as_str()).collect();
    let exists = |r: &str| server.roles.contains(r) || created.contains(r);
    for m in &rec.memberships {
        let edge = (m.role.clone(), m.member.clone());
        if !exists(&m.role) && !exists(&m.member) {
            continue;
        } else if !exists(&m.role) || !exists(&m.member) {
            let absent = if exists(&m.role) { &m.member } else { &m.role };
            plan.notes.push(format!(
                "{} was not made a member of {}: role {absent} does not exist on the target",
                m.member, m.role
            ));
        } else if created.contains(m.role.as_str()) || created.contains(m.member.as_str()) {
            plan.memberships.push(m.clone());
        } else if !server.memberships.contains(&edge) {
            plan.notes.push(format!(
                "{} is not a member of {} on the target as it was on the old server; both roles existed, so they were left as they are",
                m.member, m.role
            ));
        }
    }
    for t in rec.tablespaces.iter().filter(|t| !server.tablespaces.contains(&t.name)) {
        if !server.superuser {
            return Err(Error::InvalidInput(format!(
                "the database uses tablespace {}, which the target lacks, and only a superuser can create it: connect as a superuser, or create it yourself (CREATE TABLESPACE {} LOCATION '…')",
                t.name, t.name
            )));
        }
        let owner = if exists(&t.owner) { t.owner.clone() } else { server.user.clone() };
        plan.tablespaces.push((t.clone(), owner));
    }
    if !plan.create_database && recorded {
        plan.notes
            .push(format!("database {} exists: its owner, settings and privileges were left as they are", plan.name));
    }
    Ok(())
}

/// How roles map onto the target, and whether that changes anything in the dump.
fn role_rules(
    plan: &Plan,
    record: Option<&DatabaseRecord>,
    server: &Server,
    owner: Option<String>,
) -> (RoleRules, bool) {
    let mut existing: HashSet<String> = server.roles.clone();
    existing.extend(plan.create.iter().map(|r| r.name.clone()));
    let mut rules = RoleRules {
        owner: owner.clone(),
        current_user: server.user.clone(),
        existing,
        owners: record.map(|r| r.owners().into_iter().collect()).unwrap_or_default(),
        ..Default::default()
    };
    let mut referenced: Vec<String> = Vec::new();
    if let Some(rec) = record {
        referenced = rec.roles.iter().map(|r| r.name.clone()).collect();
        let boot = &rec.bootstrap_superuser;
        if *boot != server.bootstrap_superuser && !server.roles.contains(boot) {
            rules.renamed.insert(boot.clone(), server.bootstrap_superuser.clone());
        }
        for ext in &rec.extensions {
            let role =
                owner.clone().unwrap_or_else(|| rules.renamed.get(&ext.owner).cloned().unwrap_or(ext.owner.clone()));
            let may = server.superuser || server.member_of.contains(&role);
            let able = server.trusted_extensions.contains(&ext.name) || rec.role(&role).is_some_and(|r| r.superuser);
            if role != server.user && rules.existing.contains(&role) && may && able {
                rules.extension_owners.insert(ext.name.clone(), role);
            }
        }
    }
    let rewrite = !rules.is_identity(&referenced);
    (rules, rewrite)
}

/// Creates roles, memberships, tablespaces and the database, recording each in `outcome` as it is made.
fn execute(
    plan: &Plan,
    record: Option<&DatabaseRecord>,
    maint: &PgConn,
    server: &Server,
    outcome: &mut TargetOutcome,
) -> Result<()> {
    let mut script = Vec::new();
    for r in &plan.create {
        script.extend(pg_sql::create_role(r)?);
    }
    script.extend(plan.memberships.iter().map(|m| pg_sql::grant_membership(m, server.version)));
    if !script.is_empty() {
        maint.execute(&script.join("\n"), true).map_err(|e| step_failed("creating the roles", e))?;
        outcome.roles_created = plan.create.iter().map(|r| r.name.clone()).collect();
    }
    for (t, owner) in &plan.tablespaces {
        let mut statements = pg_sql::create_tablespace(t, owner);
        if let (Some(acl), Some(rec)) = (&t.acl, record) {
            statements.extend(grants("TABLESPACE", &t.name, owner, acl, plan, rec, &mut outcome.notes));
        }
        for sql in statements {
            maint.query(&sql).map_err(|e| {
                step_failed(
                    &format!("creating tablespace {} at {} (its location on the old server)", t.name, t.location),
                    e,
                )
            })?;
        }
        outcome.tablespaces_created.push(t.name.clone());
    }
    let Some(rec) = record.filter(|_| plan.create_database) else { return Ok(()) };
    let create = pg_sql::create_database(&rec.database, &plan.name, &plan.owner, server.version)?;
    maint.query(&create).map_err(|e| step_failed(&format!("creating database {}", plan.name), e))?;
    outcome.database_created = true;
    outcome.owner = Some(plan.owner.clone());
    if let Some(acl) = &rec.database.acl {
        let sql = grants("DATABASE", &plan.name, &plan.owner, acl, plan, rec, &mut outcome.notes);
        maint.execute(&sql.join("\n"), true).map_err(|e| step_failed("granting the database's privileges", e))?;
    }
    Ok(())
}

/// The statements that rebuild a database's or tablespace's ACL on the target, with a note for each grantee the
/// target lacks.
fn grants(
    kind: &str,
    name: &str,
    owner: &str,
    acl: &[AclItem],
    plan: &Plan,
    rec: &DatabaseRecord,
    notes: &mut Vec<String>,
) -> Vec<String> {
    for role in acl.iter().filter_map(|i| i.grantee.as_deref()).filter(|r| map_role(plan, rec, r).is_none()) {
        notes.push(format!(
            "the privileges of role {role} on {} {name} were left out: the role does not exist on the target",
            kind.to_lowercase()
        ));
    }
    pg_sql::acl_statements(kind, name, owner, acl, |r| map_role(plan, rec, r))
}

/// A recorded role as it is on the target: the new owner for an owner under `--owner`/`--no-owner`, the new
/// name of a renamed one, else itself if the target has it (or is given it).
fn map_role(plan: &Plan, rec: &DatabaseRecord, role: &str) -> Option<String> {
    let m = &plan.mapping;
    if let Some(o) = &m.owner
        && (m.owners.contains(role) || rec.owners().iter().any(|x| x == role))
    {
        return Some(o.clone());
    }
    m.renamed.get(role).cloned().or_else(|| m.existing.contains(role).then(|| role.to_string()))
}

/// After the load: the database's settings, its roles' settings in it, its comment, whether it is a template.
fn finish(plan: &Plan, record: Option<&DatabaseRecord>, maint: &PgConn) -> Result<()> {
    let Some(rec) = record.filter(|_| plan.create_database) else { return Ok(()) };
    let db = ident(&plan.name);
    let mut sql = Vec::new();
    for s in &rec.database.settings {
        sql.push(pg_sql::set_statement(&format!("ALTER DATABASE {db}"), s)?);
    }
    for rs in &rec.database.role_settings {
        if let Some(role) = map_role(plan, rec, &rs.role) {
            for s in &rs.settings {
                sql.push(pg_sql::set_statement(&format!("ALTER ROLE {} IN DATABASE {db}", ident(&role)), s)?);
            }
        }
    }
    if let Some(c) = &rec.database.comment {
        sql.push(format!("COMMENT ON DATABASE {db} IS {};", literal(c)));
    }
    if rec.database.is_template {
        sql.push(format!("ALTER DATABASE {db} IS_TEMPLATE = true;"));
    }
    if sql.is_empty() {
        return Ok(());
    }
    maint.execute(&sql.join("\n"), true).map_err(|e| step_failed("setting the database's properties", e))
}

/// Drops what the restore created and returns its error, saying what was dropped.
fn undo(plan: &Plan, maint: &PgConn, outcome: &TargetOutcome, e: Error) -> Error {
    let mut dropped = Vec::new();
    let mut left = Vec::new();
    let mut run = |sql: String, what: String| match maint.query(&sql) {
        Ok(_) => dropped.push(what),
        Err(err) => left.push(format!("{what} ({err})")),
    };
    if outcome.database_created {
        run(format!("DROP DATABASE IF EXISTS {}", ident(&plan.name)), format!("database {}", plan.name));
    }
    for t in &outcome.tablespaces_created {
        run(format!("DROP TABLESPACE IF EXISTS {}", ident(t)), format!("tablespace {t}"));
    }
    if !outcome.roles_created.is_empty() {
        let names: Vec<String> = outcome.roles_created.iter().map(|r| ident(r)).collect();
        run(format!("DROP ROLE IF EXISTS {}", names.join(", ")), format!("roles {}", outcome.roles_created.join(", ")));
    }
    let mut msg = e.to_string();
    if !dropped.is_empty() {
        msg.push_str(&format!("; dropped again what this restore had created: {}", dropped.join(", ")));
    }
    if !left.is_empty() {
        msg.push_str(&format!("; could not drop {} — drop them by hand", left.join(", ")));
    }
    match e {
        Error::InvalidInput(_) => Error::InvalidInput(msg),
        _ => Error::SourceFailed(msg),
    }
}

/// A step's failure, with what to do for the failures an operator can fix.
fn step_failed(step: &str, e: Error) -> Error {
    let text = e.to_string();
    let hint = if text.contains("must be member of role") || text.contains("must be able to SET ROLE") {
        " (connect as a superuser, or pass --owner with a role you are, or --no-owner)"
    } else if text.contains("does not exist") && step.starts_with("creating tablespace") {
        " (create that directory on the new server, empty and owned by the server's user, or create the tablespace yourself elsewhere, then run this again)"
    } else if text.contains("invalid locale name") || text.contains("collation") {
        " (the target server lacks this locale: install it, or restore onto a server that has it)"
    } else {
        ""
    };
    Error::SourceFailed(format!("{step} failed: {text}{hint}"))
}

/// `a, b and c`.
fn list(names: &[String]) -> String {
    let names: Vec<&str> = names.iter().map(String::as_str).collect::<BTreeSet<_>>().into_iter().collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => format!("role {one}"),
        [init @ .., last] => format!("roles {} and {last}", init.join(", ")),
    }
}

/// The outcome with the plan's and the rewriter's notes.
fn describe(plan: Plan, mut outcome: TargetOutcome, report: Option<RewriteReport>) -> TargetOutcome {
    outcome.roles_existing = plan.existing;
    outcome.roles_missing = plan.missing;
    let mut notes = plan.notes;
    notes.append(&mut outcome.notes);
    outcome.notes = notes;
    if outcome.roles_with_passwords == Some(false) {
        for r in plan.create.iter().filter(|r| r.login) {
            outcome.notes.push(format!(
                "role {} was created without a password: the backup was not taken by a superuser, so it could not read passwords; set one with ALTER ROLE {} PASSWORD '…'",
                r.name,
                ident(&r.name)
            ));
        }
    }
    if let Some(report) = report {
        for (role, n) in &report.skipped {
            outcome.notes.push(format!(
                "{n} statement(s) naming role {role} (privileges, default privileges, policy roles) were left out: the role does not exist on the target"
            ));
        }
        for p in &report.policies_dropped {
            outcome.notes.push(format!(
                "row-security policy {p} was left out: it applies only to roles the target lacks, so without it every role that exists is treated the same"
            ));
        }
        if report.owners_changed > 0 {
            outcome
                .notes
                .push(format!("{} ownership statement(s) changed (--owner/--no-owner)", report.owners_changed));
        }
    }
    outcome
}

/// Reads a source's `database.json`, if the snapshot has one (snapshots of older versions do not).
pub fn read_record(bytes: Option<Vec<u8>>) -> Result<Option<DatabaseRecord>> {
    let Some(bytes) = bytes else { return Ok(None) };
    let rec: DatabaseRecord = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidInput(format!("the snapshot's {RECORD_FILE} cannot be read: {e}")))?;
    if rec.format != 1 {
        return Err(Error::UnsupportedVersion { what: RECORD_FILE.into(), found: rec.format, supported: 1 });
    }
    Ok(Some(rec))
}
