//! What a logical dump does not hold and a restore onto a new server needs: the database's own properties and
//! the cluster's globals it depends on, recorded by the `postgres` source beside the dump as `database.json`.
//!
//! Built from catalog queries rather than by filtering `pg_dumpall --globals-only`: pg_dumpall writes every role
//! and tablespace of the cluster as SQL text, and picking out the ones a database needs would mean parsing that
//! text (quoted names, comments, version differences) — while the catalogs say exactly which roles a database
//! refers to (`pg_shdepend`: owners, grantees of privileges and default privileges, policy roles; the
//! database's owner and ACL; roles with settings in it) and give the result as structured data, so a restore can
//! decide role by role what exists and what to create. The roles kept are those, the roles that are members of
//! them (down every chain: `readonly` granted to `app_ro_user` keeps `app_ro_user`), and the roles they are
//! members of (up every chain), with the memberships between them. Role passwords (their hashes) are kept when
//! the backup's user may read `pg_authid` (a superuser), and the record says whether it could.

use serde::{Deserialize, Serialize};

use super::pg_conn::PgConn;
use crate::error::{Error, Result};

/// The file name of the record in a postgres source's directory.
pub const RECORD_FILE: &str = "database.json";

/// `database.json`: the database and the globals it needs, as the backup found them.
#[derive(Clone, Serialize, Deserialize)]
pub struct DatabaseRecord {
    /// The record's own format version (1).
    pub format: u32,
    /// The source server's `server_version_num` (150018 for 15.18).
    pub server_version_num: u32,
    /// The source cluster's bootstrap superuser (`postgres` usually), which owns what initdb made.
    pub bootstrap_superuser: String,
    /// True when role passwords were readable (the backup ran as a superuser) and are in `roles`.
    pub roles_with_passwords: bool,
    /// The database's own properties.
    pub database: Database,
    /// The roles the database needs (no built-in ones), by name.
    pub roles: Vec<Role>,
    /// Memberships among those roles (and in built-in roles).
    pub memberships: Vec<Membership>,
    /// Tablespaces the database or its tables use, other than `pg_default`.
    pub tablespaces: Vec<Tablespace>,
    /// The database's extensions and who owns them (pg_dump does not say).
    pub extensions: Vec<Extension>,
}

/// A database's properties: what `CREATE DATABASE` and `ALTER DATABASE` set, and `\l` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Database {
    /// Its name on the source server.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Its encoding (`UTF8`).
    pub encoding: String,
    /// `LC_COLLATE`.
    pub lc_collate: String,
    /// `LC_CTYPE`.
    pub lc_ctype: String,
    /// `libc`, `icu` or `builtin`.
    pub locale_provider: String,
    /// The ICU (or builtin) locale, when the provider is not libc.
    pub locale: Option<String>,
    /// ICU tailoring rules (PostgreSQL 16+).
    pub icu_rules: Option<String>,
    /// Its default tablespace, when not `pg_default`.
    pub tablespace: Option<String>,
    /// `CONNECTION LIMIT` (-1: none).
    pub connection_limit: i32,
    /// True when it is a template database.
    pub is_template: bool,
    /// `ALTER DATABASE … SET` settings, as `name=value`.
    pub settings: Vec<String>,
    /// Its ACL item by item, in order; `None` when it has the default privileges.
    pub acl: Option<Vec<AclItem>>,
    /// `COMMENT ON DATABASE`.
    pub comment: Option<String>,
    /// `ALTER ROLE … IN DATABASE … SET` settings.
    pub role_settings: Vec<RoleSettings>,
}

/// One item of an ACL: the privileges a grantee holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclItem {
    /// The role; `None` for PUBLIC.
    pub grantee: Option<String>,
    /// `CREATE`, `TEMPORARY`, `CONNECT`.
    pub privileges: Vec<String>,
    /// Those of `privileges` held with the grant option.
    pub grantable: Vec<String>,
}

/// A role's settings in one database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleSettings {
    /// The role.
    pub role: String,
    /// Its settings there, as `name=value`.
    pub settings: Vec<String>,
}

/// A role as `CREATE ROLE` makes it. Not `Debug`: it may hold a password hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// `SUPERUSER`.
    pub superuser: bool,
    /// `INHERIT`.
    pub inherit: bool,
    /// `CREATEROLE`.
    pub create_role: bool,
    /// `CREATEDB`.
    pub create_db: bool,
    /// `LOGIN`.
    pub login: bool,
    /// `REPLICATION`.
    pub replication: bool,
    /// `BYPASSRLS`.
    pub bypass_rls: bool,
    /// `CONNECTION LIMIT` (-1: none).
    pub connection_limit: i32,
    /// `VALID UNTIL`, as PostgreSQL prints it.
    pub valid_until: Option<String>,
    /// The password as stored (a SCRAM or MD5 hash), when readable.
    pub password: Option<String>,
    /// `ALTER ROLE … SET` settings (in every database), as `name=value`.
    pub settings: Vec<String>,
    /// `COMMENT ON ROLE`.
    pub comment: Option<String>,
    /// How the database refers to it: `owner`, `acl`, `policy` (none: it is here as a member or a group).
    pub referenced_as: Vec<String>,
}

/// `GRANT role TO member`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Membership {
    /// The group role.
    pub role: String,
    /// The member.
    pub member: String,
    /// `WITH ADMIN OPTION`.
    pub admin_option: bool,
    /// `INHERIT` option (PostgreSQL 16+).
    #[serde(default)]
    pub inherit_option: Option<bool>,
    /// `SET` option (PostgreSQL 16+).
    #[serde(default)]
    pub set_option: Option<bool>,
}

/// A tablespace the database uses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tablespace {
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Its directory on the source server.
    pub location: String,
    /// Its options (`seq_page_cost=1.5`).
    pub options: Vec<String>,
    /// Its ACL item by item; `None` when it has the default privileges.
    #[serde(default)]
    pub acl: Option<Vec<AclItem>>,
}

/// An extension and its owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Extension {
    /// Its name.
    pub name: String,
    /// The role that owns it.
    pub owner: String,
}

impl DatabaseRecord {
    /// A record of nothing, standing in for the one a snapshot of an older gumvault lacks.
    pub fn empty(name: &str) -> DatabaseRecord {
        DatabaseRecord {
            format: 0,
            server_version_num: 0,
            bootstrap_superuser: String::new(),
            roles_with_passwords: false,
            database: Database {
                name: name.to_string(),
                owner: String::new(),
                encoding: String::new(),
                lc_collate: String::new(),
                lc_ctype: String::new(),
                locale_provider: "libc".into(),
                locale: None,
                icu_rules: None,
                tablespace: None,
                connection_limit: -1,
                is_template: false,
                settings: Vec::new(),
                acl: None,
                comment: None,
                role_settings: Vec::new(),
            },
            roles: Vec::new(),
            memberships: Vec::new(),
            tablespaces: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// The recorded role with this name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Roles that own something in the database (objects, default privileges, extensions, tablespaces, the
    /// database itself): those `--owner` replaces.
    pub fn owners(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .roles
            .iter()
            .filter(|r| r.referenced_as.iter().any(|k| k == "owner"))
            .map(|r| r.name.clone())
            .collect();
        if !self.database.owner.is_empty() {
            out.push(self.database.owner.clone());
        }
        out.extend(self.extensions.iter().map(|e| e.owner.clone()));
        out.extend(self.tablespaces.iter().map(|t| t.owner.clone()));
        out.sort();
        out.dedup();
        out
    }
}

/// Reads the record of `conn`'s database: one query for what may be read, one for the record itself.
pub fn capture(conn: &PgConn) -> Result<DatabaseRecord> {
    let probe = conn.query("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")?;
    let with_passwords = probe.first().and_then(|r| r.first()).is_some_and(|v| v == "t");
    let sql = CAPTURE
        .replace("{acl:d.datacl}", &acl_json("d.datacl"))
        .replace("{acl:t.spcacl}", &acl_json("t.spcacl"))
        .replace("{roles}", if with_passwords { "pg_catalog.pg_authid" } else { "pg_catalog.pg_roles" })
        .replace("{password}", if with_passwords { "a.rolpassword" } else { "NULL::text" });
    let rows = conn.query(&sql)?;
    let text = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| Error::SourceFailed(format!("reading the properties of {} returned nothing", conn.display())))?;
    let mut record: DatabaseRecord = serde_json::from_str(text)
        .map_err(|e| Error::SourceFailed(format!("the properties of {} could not be read: {e}", conn.display())))?;
    record.roles_with_passwords = with_passwords;
    Ok(record)
}

/// An ACL column as JSON: `null` for the default privileges, else its items in order, each grantee's privileges
/// together (PUBLIC as a `null` grantee).
fn acl_json(column: &str) -> String {
    format!(
        "CASE WHEN {column} IS NOT NULL THEN coalesce((
        SELECT json_agg(json_build_object(
                 'grantee', CASE WHEN i.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(i.grantee) END,
                 'privileges', i.privs, 'grantable', coalesce(i.grantable, '{{}}')) ORDER BY i.ord)
          FROM (SELECT a.ord, (e).grantee, array_agg((e).privilege_type) AS privs,
                       array_agg((e).privilege_type) FILTER (WHERE (e).is_grantable) AS grantable
                  FROM unnest({column}) WITH ORDINALITY a(item, ord), pg_catalog.aclexplode(ARRAY[a.item]) e
                 GROUP BY a.ord, (e).grantee) i), '[]') END"
    )
}

/// The query that builds the record as one JSON document. Columns that only some versions have (the locale
/// provider from 15, ICU rules from 16, `datlocale` from 17, membership options from 16) are read through
/// `to_jsonb` of the row, so one query works on every supported server.
const CAPTURE: &str = r#"
WITH RECURSIVE
db AS (SELECT d.*, to_jsonb(d) AS j FROM pg_catalog.pg_database d WHERE d.datname = current_database()),
spc AS (SELECT t.oid FROM pg_catalog.pg_tablespace t
         WHERE t.spcname NOT IN ('pg_default', 'pg_global')
           AND (t.oid IN (SELECT reltablespace FROM pg_catalog.pg_class) OR t.oid = (SELECT dattablespace FROM db))),
direct AS (
  SELECT s.refobjid AS r FROM pg_catalog.pg_shdepend s, db
   WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass
     AND (s.dbid = db.oid OR (s.dbid = 0 AND s.classid = 'pg_catalog.pg_database'::regclass AND s.objid = db.oid))
  UNION SELECT datdba FROM db
  UNION SELECT setrole FROM pg_catalog.pg_db_role_setting, db WHERE setdatabase = db.oid AND setrole <> 0
  UNION SELECT extowner FROM pg_catalog.pg_extension
  UNION SELECT spcowner FROM pg_catalog.pg_tablespace WHERE oid IN (SELECT oid FROM spc)),
down AS (SELECT r FROM direct UNION SELECT m.member FROM pg_catalog.pg_auth_members m JOIN down ON m.roleid = down.r),
up AS (SELECT r FROM down UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN up ON m.member = up.r),
needed AS (SELECT r FROM up WHERE r >= 16384)
SELECT json_build_object(
  'format', 1,
  'server_version_num', current_setting('server_version_num')::int,
  'bootstrap_superuser', (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10),
  'roles_with_passwords', false,
  'database', (SELECT json_build_object(
     'name', d.datname, 'owner', pg_catalog.pg_get_userbyid(d.datdba),
     'encoding', pg_catalog.pg_encoding_to_char(d.encoding), 'lc_collate', d.datcollate, 'lc_ctype', d.datctype,
     'locale_provider', CASE d.j->>'datlocprovider' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' ELSE 'libc' END,
     'locale', coalesce(d.j->>'datlocale', d.j->>'daticulocale'),
     'icu_rules', d.j->>'daticurules',
     'tablespace', (SELECT spcname FROM pg_catalog.pg_tablespace WHERE oid = d.dattablespace AND spcname <> 'pg_default'),
     'connection_limit', d.datconnlimit, 'is_template', d.datistemplate,
     'settings', coalesce((SELECT to_json(setconfig) FROM pg_catalog.pg_db_role_setting
                            WHERE setdatabase = d.oid AND setrole = 0), '[]'),
     'acl', {acl:d.datacl},
     'comment', pg_catalog.shobj_description(d.oid, 'pg_database'),
     'role_settings', coalesce((SELECT json_agg(json_build_object('role', pg_catalog.pg_get_userbyid(setrole),
                                   'settings', setconfig) ORDER BY pg_catalog.pg_get_userbyid(setrole))
                                 FROM pg_catalog.pg_db_role_setting WHERE setdatabase = d.oid AND setrole <> 0), '[]')
   ) FROM db d),
  'roles', coalesce((SELECT json_agg(json_build_object(
       'name', a.rolname, 'superuser', a.rolsuper, 'inherit', a.rolinherit, 'create_role', a.rolcreaterole,
       'create_db', a.rolcreatedb, 'login', a.rolcanlogin, 'replication', a.rolreplication,
       'bypass_rls', a.rolbypassrls, 'connection_limit', a.rolconnlimit, 'valid_until', a.rolvaliduntil::text,
       'password', {password},
       'settings', coalesce((SELECT to_json(setconfig) FROM pg_catalog.pg_db_role_setting
                              WHERE setrole = a.oid AND setdatabase = 0), '[]'),
       'comment', pg_catalog.shobj_description(a.oid, 'pg_authid'),
       'referenced_as', coalesce((SELECT json_agg(DISTINCT CASE s.deptype WHEN 'o' THEN 'owner' WHEN 'a' THEN 'acl'
                                                 WHEN 'r' THEN 'policy' ELSE s.deptype::text END)
                                   FROM pg_catalog.pg_shdepend s, db
                                  WHERE s.refobjid = a.oid AND s.refclassid = 'pg_catalog.pg_authid'::regclass
                                    AND (s.dbid = db.oid OR (s.dbid = 0 AND s.classid = 'pg_catalog.pg_database'::regclass
                                                            AND s.objid = db.oid))), '[]')
     ) ORDER BY a.rolname) FROM {roles} a WHERE a.oid IN (SELECT r FROM needed)), '[]'),
  'memberships', coalesce((SELECT json_agg(json_build_object(
       'role', pg_catalog.pg_get_userbyid(m.roleid), 'member', pg_catalog.pg_get_userbyid(m.member),
       'admin_option', m.admin_option, 'inherit_option', to_jsonb(m)->'inherit_option',
       'set_option', to_jsonb(m)->'set_option')
       ORDER BY pg_catalog.pg_get_userbyid(m.roleid), pg_catalog.pg_get_userbyid(m.member))
     FROM pg_catalog.pg_auth_members m
    WHERE m.member IN (SELECT r FROM needed) AND m.roleid IN (SELECT r FROM up)), '[]'),
  'tablespaces', coalesce((SELECT json_agg(json_build_object('name', t.spcname,
       'owner', pg_catalog.pg_get_userbyid(t.spcowner), 'location', pg_catalog.pg_tablespace_location(t.oid),
       'options', coalesce(t.spcoptions, '{}'), 'acl', {acl:t.spcacl}) ORDER BY t.spcname)
     FROM pg_catalog.pg_tablespace t WHERE t.oid IN (SELECT oid FROM spc)), '[]'),
  'extensions', coalesce((SELECT json_agg(json_build_object('name', extname,
       'owner', pg_catalog.pg_get_userbyid(extowner)) ORDER BY extname) FROM pg_catalog.pg_extension), '[]')
)::text
"#;
