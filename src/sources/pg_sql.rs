//! SQL text that gumvault writes itself: quoting, and the statements that rebuild what a database needs from its
//! cluster (roles, memberships, settings, the database and its properties) from the record a backup keeps
//! (`database.json`, see [`super::pg_record`]). Pure functions, so every statement can be tested without a server.

use super::pg_record::{AclItem, Database, Membership, Role, Tablespace};
use crate::error::{Error, Result};

/// An identifier in double quotes, with `"` doubled: always valid, whatever the name is.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal. With a backslash in it, the `E''` form with backslashes doubled, so it means the same
/// whatever `standard_conforming_strings` is (as PostgreSQL's own `quote_literal` does).
pub fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') { format!("E'{}'", quoted.replace('\\', "\\\\")) } else { format!("'{quoted}'") }
}

/// Settings whose value is a list of names, each quoted on its own (PostgreSQL's `GUC_LIST_QUOTE` variables, as
/// pg_dump knows them): `search_path = app, public` must stay two names, not become one.
const LIST_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `PREFIX SET name TO value` for one stored setting `name=value` (a `setconfig` entry); `prefix` is
/// `ALTER ROLE "app"`, `ALTER DATABASE "db"` or `ALTER ROLE "app" IN DATABASE "db"`.
pub fn set_statement(prefix: &str, setting: &str) -> Result<String> {
    let (name, value) = setting
        .split_once('=')
        .ok_or_else(|| Error::InvalidInput(format!("the recorded setting {setting:?} is not name=value")))?;
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        let items = split_list(value);
        if items.is_empty() {
            "''".to_string()
        } else {
            items.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", ")
        }
    } else {
        literal(value)
    };
    Ok(format!("{prefix} SET {} TO {value};", ident(name)))
}

/// Splits a list setting as PostgreSQL stores it (`"$user", public`): at commas outside double quotes, each
/// element unquoted.
fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c if c.is_whitespace() && !quoted && current.is_empty() => {}
            c => current.push(c),
        }
    }
    items.push(current);
    items.into_iter().map(|s| s.trim_end().to_string()).filter(|s| !s.is_empty()).collect()
}

/// `CREATE ROLE` with the role's recorded attributes (and its password hash when the record has one), then its
/// own settings and comment. The caller sends it on standard input: the hash is never on a command line.
pub fn create_role(role: &Role) -> Result<Vec<String>> {
    let flag = |on: bool, name: &str| if on { name.to_string() } else { format!("NO{name}") };
    let mut sql = format!(
        "CREATE ROLE {} WITH {} {} {} {} {} {} {} CONNECTION LIMIT {}",
        ident(&role.name),
        flag(role.superuser, "SUPERUSER"),
        flag(role.inherit, "INHERIT"),
        flag(role.create_role, "CREATEROLE"),
        flag(role.create_db, "CREATEDB"),
        flag(role.login, "LOGIN"),
        flag(role.replication, "REPLICATION"),
        flag(role.bypass_rls, "BYPASSRLS"),
        role.connection_limit
    );
    if let Some(p) = &role.password {
        sql.push_str(&format!(" PASSWORD {}", literal(p)));
    }
    if let Some(v) = &role.valid_until {
        sql.push_str(&format!(" VALID UNTIL {}", literal(v)));
    }
    sql.push(';');
    let mut out = vec![sql];
    for s in &role.settings {
        out.push(set_statement(&format!("ALTER ROLE {}", ident(&role.name)), s)?);
    }
    if let Some(c) = &role.comment {
        out.push(format!("COMMENT ON ROLE {} IS {};", ident(&role.name), literal(c)));
    }
    Ok(out)
}

/// `GRANT role TO member`, with the options the source recorded that the target understands (`INHERIT` and
/// `SET` exist from PostgreSQL 16).
pub fn grant_membership(m: &Membership, target_version: u32) -> String {
    let mut options = Vec::new();
    if m.admin_option {
        options.push("ADMIN OPTION".to_string());
    }
    if target_version >= 160000 {
        if let Some(i) = m.inherit_option {
            options.push(format!("INHERIT {}", if i { "TRUE" } else { "FALSE" }));
        }
        if let Some(s) = m.set_option {
            options.push(format!("SET {}", if s { "TRUE" } else { "FALSE" }));
        }
    }
    let with = if options.is_empty() { String::new() } else { format!(" WITH {}", options.join(", ")) };
    format!("GRANT {} TO {}{with};", ident(&m.role), ident(&m.member))
}

/// `CREATE TABLESPACE` at the location the tablespace had on the old server, with its options.
pub fn create_tablespace(t: &Tablespace, owner: &str) -> Vec<String> {
    let mut out =
        vec![format!("CREATE TABLESPACE {} OWNER {} LOCATION {};", ident(&t.name), ident(owner), literal(&t.location))];
    if !t.options.is_empty() {
        out.push(format!("ALTER TABLESPACE {} SET ({});", ident(&t.name), t.options.join(", ")));
    }
    out
}

/// `CREATE DATABASE name` from template0 with the recorded encoding, locale (provider, collation, character
/// classes, ICU locale and rules), tablespace and connection limit, owned by `owner`. Options the target's
/// version does not know are left out when they hold their default; otherwise the target cannot make the
/// database and this says so.
pub fn create_database(db: &Database, name: &str, owner: &str, target_version: u32) -> Result<String> {
    let mut sql = format!(
        "CREATE DATABASE {} WITH TEMPLATE = template0 OWNER = {} ENCODING = {}",
        ident(name),
        ident(owner),
        literal(&db.encoding)
    );
    let provider = db.locale_provider.as_str();
    let needs = |version: u32, what: &str| {
        if target_version < version {
            Err(Error::InvalidInput(format!(
                "database {} uses {what}, which the target server (version {target_version}) does not have: restore onto PostgreSQL {} or newer",
                db.name,
                version / 10000
            )))
        } else {
            Ok(())
        }
    };
    if provider != "libc" {
        needs(if provider == "builtin" { 170000 } else { 150000 }, &format!("the {provider} locale provider"))?;
    }
    if target_version >= 150000 {
        sql.push_str(&format!(" LOCALE_PROVIDER = {provider}"));
    }
    sql.push_str(&format!(" LC_COLLATE = {} LC_CTYPE = {}", literal(&db.lc_collate), literal(&db.lc_ctype)));
    match (provider, &db.locale) {
        ("icu", Some(l)) => sql.push_str(&format!(" ICU_LOCALE = {}", literal(l))),
        ("builtin", Some(l)) => sql.push_str(&format!(" BUILTIN_LOCALE = {}", literal(l))),
        _ => {}
    }
    if let Some(rules) = db.icu_rules.as_deref().filter(|r| !r.is_empty()) {
        needs(160000, "ICU rules")?;
        sql.push_str(&format!(" ICU_RULES = {}", literal(rules)));
    }
    if let Some(t) = &db.tablespace {
        sql.push_str(&format!(" TABLESPACE = {}", ident(t)));
    }
    sql.push_str(&format!(" CONNECTION LIMIT = {};", db.connection_limit));
    Ok(sql)
}

/// A database's or tablespace's access privileges (`kind` is `DATABASE` or `TABLESPACE`) as GRANT statements
/// that rebuild its ACL item by item, in the recorded order: everything revoked first (from PUBLIC and from the
/// owner), then each item granted again. `grantee` maps a recorded role to the role it is on the target
/// (`None`: left out, the role is missing there).
pub fn acl_statements(
    kind: &str,
    name: &str,
    owner: &str,
    acl: &[AclItem],
    grantee: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let on = format!("ON {kind} {}", ident(name));
    let mut out = vec![format!("REVOKE ALL {on} FROM PUBLIC;"), format!("REVOKE ALL {on} FROM {};", ident(owner))];
    for item in acl {
        let to = match &item.grantee {
            None => "PUBLIC".to_string(),
            Some(r) => match grantee(r) {
                Some(t) => ident(&t),
                None => continue,
            },
        };
        let plain: Vec<&str> =
            item.privileges.iter().filter(|p| !item.grantable.contains(p)).map(String::as_str).collect();
        if !plain.is_empty() {
            out.push(format!("GRANT {} {on} TO {to};", plain.join(", ")));
        }
        if !item.grantable.is_empty() {
            out.push(format!("GRANT {} {on} TO {to} WITH GRANT OPTION;", item.grantable.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("app"), "\"app\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn settings_keep_lists_apart() {
        let p = "ALTER ROLE \"app\"";
        assert_eq!(
            set_statement(p, "statement_timeout=5s").unwrap(),
            "ALTER ROLE \"app\" SET \"statement_timeout\" TO '5s';"
        );
        assert_eq!(
            set_statement(p, "search_path=\"$user\", public, \"My \"\"Schema\"").unwrap(),
            "ALTER ROLE \"app\" SET \"search_path\" TO '$user', 'public', 'My \"Schema';"
        );
        assert_eq!(set_statement(p, "search_path=\"\"").unwrap(), "ALTER ROLE \"app\" SET \"search_path\" TO '';");
        assert_eq!(set_statement(p, "x.y=a=b").unwrap(), "ALTER ROLE \"app\" SET \"x.y\" TO 'a=b';");
        assert!(set_statement(p, "nonsense").is_err());
    }

    #[test]
    fn database_acl_is_rebuilt_in_order() {
        let acl = vec![
            AclItem {
                grantee: Some("app".into()),
                privileges: vec!["CREATE".into(), "CONNECT".into()],
                grantable: vec![],
            },
            AclItem { grantee: None, privileges: vec!["CONNECT".into()], grantable: vec![] },
            AclItem { grantee: Some("gone".into()), privileges: vec!["CONNECT".into()], grantable: vec![] },
            AclItem {
                grantee: Some("ops".into()),
                privileges: vec!["CONNECT".into(), "TEMPORARY".into()],
                grantable: vec!["TEMPORARY".into()],
            },
        ];
        let sql = acl_statements("DATABASE", "db", "app", &acl, |r| (r != "gone").then(|| r.to_string()));
        assert_eq!(
            sql,
            [
                "REVOKE ALL ON DATABASE \"db\" FROM PUBLIC;",
                "REVOKE ALL ON DATABASE \"db\" FROM \"app\";",
                "GRANT CREATE, CONNECT ON DATABASE \"db\" TO \"app\";",
                "GRANT CONNECT ON DATABASE \"db\" TO PUBLIC;",
                "GRANT CONNECT ON DATABASE \"db\" TO \"ops\";",
                "GRANT TEMPORARY ON DATABASE \"db\" TO \"ops\" WITH GRANT OPTION;",
            ]
        );
    }
}
