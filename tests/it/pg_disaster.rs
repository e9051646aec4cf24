//! The database after its server is gone: a `postgres` source's snapshot restored onto a brand-new PostgreSQL 15
//! server that has neither the database nor its roles, on real servers. The database has what an application's
//! has: an owner role, grants to a group role whose member logs in, an extension, an enum, a partitioned table, a
//! materialized view, a trigger with its function, a row-security policy, a large object, a sequence at 123456,
//! database settings, role settings (global and in the database), a database ACL and comment, an ICU locale.
//! Restored, `pg_dump` of both databases is the same text, and so is every `\l`-level property and role. Also:
//! `--owner` onto a managed server with one role, `--roles skip`, a second restore refused without `--clean`, a
//! tablespace the new server lacks, the test-restore hint, and a loader that never commits a dump cut short.

use std::path::PathBuf;
use std::process::Output;

use crate::common::pg::PgServer;
use crate::common::{Env, code, stderr};

/// Cluster-wide set-up on the old server, one statement at a time (CREATE DATABASE cannot share a transaction).
const CLUSTER: &[&str] = &[
    "CREATE ROLE app LOGIN PASSWORD 'app-pw' CREATEDB CONNECTION LIMIT 20 VALID UNTIL '2099-01-01 00:00:00+00'",
    "CREATE ROLE readonly NOLOGIN",
    "CREATE ROLE app_ro_user LOGIN PASSWORD 'ro-pw' IN ROLE readonly",
    "ALTER ROLE app SET statement_timeout = '5s'",
    "ALTER ROLE app SET search_path = app, public",
    "COMMENT ON ROLE app IS 'the application''s own role'",
    "CREATE DATABASE bubblegum OWNER app TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
     LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' CONNECTION LIMIT 50",
    "ALTER DATABASE bubblegum SET search_path = app, public",
    "ALTER DATABASE bubblegum SET work_mem = '8MB'",
    "ALTER ROLE readonly IN DATABASE bubblegum SET statement_timeout = '1min'",
    "REVOKE ALL ON DATABASE bubblegum FROM PUBLIC",
    "GRANT CONNECT ON DATABASE bubblegum TO readonly",
    "GRANT CONNECT, TEMPORARY ON DATABASE bubblegum TO app_ro_user WITH GRANT OPTION",
    "COMMENT ON DATABASE bubblegum IS 'orders and sign-ups'",
];

/// The application's schema and data, made by its own role. Notes hold text that looks like SQL, a COPY end
/// marker and a comment, and the function body a line that looks like an ownership statement: none of it may be
/// mistaken for a statement on the way in.
const DATABASE: &str = r#"
SET ROLE app;
CREATE EXTENSION citext;
CREATE SCHEMA app;
CREATE TYPE app.status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE app.users (id bigserial PRIMARY KEY, email citext UNIQUE NOT NULL, note text,
                        touched timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE TABLE app.orders (id bigint NOT NULL, user_id bigint REFERENCES app.users, status app.status NOT NULL DEFAULT 'new',
                         placed date NOT NULL, total numeric(10,2), PRIMARY KEY (id, placed)) PARTITION BY RANGE (placed);
CREATE TABLE app.orders_2025 PARTITION OF app.orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.orders_2026 PARTITION OF app.orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SEQUENCE app.invoice_no;
SELECT setval('app.invoice_no', 123456);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  -- ALTER TABLE app.users OWNER TO readonly;
  NEW.touched := '2026-06-01';
  RETURN NEW;
END $body$;
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
INSERT INTO app.users (email, note) SELECT 'U' || g || '@example.com', 'user ' || g FROM generate_series(1, 100) g;
UPDATE app.users SET note = 'GRANT ALL ON app.users TO readonly;' WHERE id = 1;
UPDATE app.users SET note = E'two\nALTER TABLE app.users OWNER TO readonly;' WHERE id = 2;
UPDATE app.users SET note = '\.' WHERE id = 3;
UPDATE app.users SET note = '--' WHERE id = 4;
INSERT INTO app.orders SELECT g, 1 + g % 100, 'paid', date '2025-06-01' + g, g * 1.5 FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW app.revenue AS SELECT placed, sum(total) AS total FROM app.orders GROUP BY placed;
SELECT lo_from_bytea(0, 'large object bytes');
GRANT USAGE ON SCHEMA app TO readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO readonly;
ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible ON app.users FOR SELECT TO readonly USING (id > 0);
RESET ROLE;
"#;

/// The database's `\l`-level properties, one line.
const DATABASE_PROPERTIES: &str =
    "SELECT concat_ws(' | ', datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding),
       datcollate, datctype, datlocprovider, daticulocale, datconnlimit, datistemplate, datacl::text,
       shobj_description(d.oid, 'pg_database'),
       (SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0),
       (SELECT string_agg(pg_get_userbyid(setrole) || ':' || setconfig::text, ',') FROM pg_db_role_setting
         WHERE setdatabase = d.oid AND setrole <> 0))
  FROM pg_database d WHERE datname = 'bubblegum'";

/// The application's roles: attributes, password hashes, settings, comments, memberships.
const ROLES: &str = "SELECT string_agg(concat_ws(' | ', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
       rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolpassword,
       (SELECT setconfig::text FROM pg_db_role_setting WHERE setrole = a.oid AND setdatabase = 0),
       shobj_description(a.oid, 'pg_authid'),
       (SELECT string_agg(pg_get_userbyid(roleid) || CASE WHEN admin_option THEN '+admin' ELSE '' END, ',')
          FROM pg_auth_members WHERE member = a.oid)), E'\n' ORDER BY rolname)
  FROM pg_authid a WHERE rolname IN ('app', 'readonly', 'app_ro_user')";

/// Who owns the extensions and the large object.
const OWNERS: &str =
    "SELECT (SELECT string_agg(extname || ':' || pg_get_userbyid(extowner), ',' ORDER BY extname) FROM pg_extension)
       || ' ' || (SELECT string_agg(pg_get_userbyid(lomowner), ',') FROM pg_largeobject_metadata)";

/// The old server with the application's database, a repository, and a config whose job backs it up.
struct Primary {
    env: Env,
    old: PgServer,
    config: PathBuf,
}

impl Primary {
    fn start() -> Primary {
        let old = PgServer::start();
        for sql in CLUSTER {
            old.sql("postgres", sql);
        }
        old.sql("bubblegum", DATABASE);
        let env = Env::new();
        let config = env.path("gumvault.toml");
        let text = format!(
            "[repository]\nurl = \"{}\"\npassword = \"env:GUMVAULT_PASSWORD\"\n\n[[jobs.bubblegum.sources]]\nname = \"db\"\nkind = \"postgres\"\nurl = \"env:PRIMARY_URL\"\npg_dump = \"{}\"\n",
            env.repo,
            old.bin_dir().join("pg_dump").display()
        );
        std::fs::write(&config, text).unwrap();
        Primary { env, old, config }
    }

    /// Writes the config with `format = "custom"` in the source.
    fn custom_format(&self) {
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace("kind = \"postgres\"\n", "kind = \"postgres\"\nformat = \"custom\"\n");
        std::fs::write(&self.config, text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env
            .cmd()
            .env("GUMVAULT_CONFIG", &self.config)
            .env("PRIMARY_URL", self.old.url("bubblegum"))
            .args(args)
            .output()
            .expect("run gumvault")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "gumvault {args:?} failed ({}):\n{}", out.status, stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Backs the database up with the job; the snapshot's id.
    fn backup(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["run", "bubblegum", "--json"])).unwrap();
        v["snapshot_id"].as_str().unwrap().to_string()
    }
}

/// Panics at the first line where two texts differ.
fn assert_same(restored: &str, original: &str, what: &str) {
    if restored == original {
        return;
    }
    let (r, o): (Vec<&str>, Vec<&str>) = (restored.lines().collect(), original.lines().collect());
    let at = r.iter().zip(&o).position(|(a, b)| a != b).unwrap_or(r.len().min(o.len()));
    panic!("{what} differs at line {}: {:?} vs {:?} ({} vs {} lines)", at + 1, r.get(at), o.get(at), r.len(), o.len());
}

/// Runs SQL as another role on `pg`, with its password.
fn sql_as(pg: &PgServer, user: &str, password: &str, db: &str, sql: &str) -> String {
    let out = std::process::Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(pg.url_as(user, password, db))
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql} as {user}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_database_restores_onto_a_brand_new_server_with_its_roles_and_properties() {
    let p = Primary::start();
    let id = p.backup();
    let record = p.ok(&["dump", &id, "/db/database.json"]);
    assert!(record.contains("\"roles_with_passwords\": true") && record.contains("SCRAM-SHA-256$"), "{record}");

    // A new server: no bubblegum, no app, no readonly.
    let new = PgServer::start();
    let out = p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("bubblegum")]);
    assert!(out.contains("roles created: app, app_ro_user, readonly"), "{out}");
    assert!(out.contains("created database") && out.contains("(owner app)"), "{out}");

    assert_same(&new.dump("bubblegum"), &p.old.dump("bubblegum"), "pg_dump of the restored database");
    assert_eq!(new.sql("postgres", DATABASE_PROPERTIES), p.old.sql("postgres", DATABASE_PROPERTIES), "\\l properties");
    assert_eq!(new.sql("postgres", ROLES), p.old.sql("postgres", ROLES), "roles");
    assert_eq!(new.sql("bubblegum", OWNERS), p.old.sql("bubblegum", OWNERS), "owners of extensions and large objects");
    assert!(p.old.sql("postgres", DATABASE_PROPERTIES).contains("readonly=c/app"));
    assert_eq!(new.sql("bubblegum", "SELECT last_value FROM app.invoice_no"), "123456");

    // The application logs in with its old password and gets its settings; the reader reads through its group.
    assert_eq!(sql_as(&new, "app", "app-pw", "bubblegum", "SHOW statement_timeout"), "5s");
    assert_eq!(sql_as(&new, "app", "app-pw", "bubblegum", "SHOW search_path"), "app, public");
    assert_eq!(sql_as(&new, "app_ro_user", "ro-pw", "bubblegum", "SELECT count(*) FROM app.users"), "100");
    assert_eq!(
        sql_as(
            &new,
            "app",
            "app-pw",
            "bubblegum",
            "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata"
        ),
        "large object bytes"
    );

    // A second restore onto the same server finds the database: refused, unless --clean.
    let again = p.run(&["restore", &id, "--source", "db", "--to-postgres", &new.url("bubblegum")]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    assert!(stderr(&again).contains("is not empty") && stderr(&again).contains("--clean"), "{}", stderr(&again));
    let out = p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("bubblegum"), "--clean", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["database_created"], false, "{v}");
    assert_eq!(v["roles_existing"], serde_json::json!(["app", "app_ro_user", "readonly"]), "{v}");
    assert_same(&new.dump("bubblegum"), &p.old.dump("bubblegum"), "pg_dump after --clean");

    // Under another name, the roles are all there now: --roles skip creates none and needs none.
    let out = p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("bubblegum_copy"), "--roles", "skip"]);
    assert!(
        out.contains("roles created: none; already there (left as they were): app, app_ro_user, readonly"),
        "{out}"
    );
    assert_eq!(new.sql("bubblegum_copy", "SELECT count(*) FROM app.orders"), "500");
}

#[test]
fn a_custom_format_dump_restores_the_same_way() {
    let p = Primary::start();
    p.custom_format();
    let id = p.backup();
    assert!(p.ok(&["ls", &id, "/db"]).contains("/db/dump.pgdump"));
    let new = PgServer::start();
    p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("bubblegum")]);
    assert_same(&new.dump("bubblegum"), &p.old.dump("bubblegum"), "pg_dump of the restored database");
    assert_eq!(new.sql("postgres", DATABASE_PROPERTIES), p.old.sql("postgres", DATABASE_PROPERTIES));
    assert_eq!(new.sql("bubblegum", OWNERS), p.old.sql("bubblegum", OWNERS));
}

/// Every object of `db` not made by an extension whose owner is not `role` (the public schema belongs to
/// pg_database_owner, which is the database's owner).
const NOT_OWNED: &str = "SELECT string_agg(what, ', ') FROM (
    SELECT 'relation ' || relname AS what, relowner AS owner FROM pg_class WHERE relnamespace = 'app'::regnamespace
    UNION ALL SELECT 'schema ' || nspname, nspowner FROM pg_namespace WHERE nspname = 'app'
    UNION ALL SELECT 'function ' || proname, proowner FROM pg_proc WHERE pronamespace = 'app'::regnamespace
    UNION ALL SELECT 'type ' || typname, typowner FROM pg_type WHERE typnamespace = 'app'::regnamespace
    UNION ALL SELECT 'large object ' || oid, lomowner FROM pg_largeobject_metadata
    UNION ALL SELECT 'extension ' || extname, extowner FROM pg_extension WHERE extname <> 'plpgsql'
    UNION ALL SELECT 'database ' || datname, datdba FROM pg_database WHERE datname = current_database()
    UNION ALL SELECT 'default privileges', defaclrole FROM pg_default_acl) o
  WHERE pg_get_userbyid(owner) <> '{role}'";

/// The policy for readonly, as pg_dump --no-owner writes it.
const POLICY: &str = "--\n-- Name: users visible; Type: POLICY; Schema: app; Owner: -\n--\n\nCREATE POLICY visible ON app.users FOR SELECT TO readonly USING ((id > 0));\n\n\n";

#[test]
fn owner_gives_everything_to_the_one_role_of_a_managed_server() {
    let p = Primary::start();
    let id = p.backup();
    // A managed server: the application gets one role that may create databases, and nothing else.
    let new = PgServer::start();
    new.sql("postgres", "CREATE ROLE solo LOGIN CREATEDB PASSWORD 'solo-pw'");
    let url = new.url_as("solo", "solo-pw", "bubblegum");
    let roles_before = new.sql("postgres", "SELECT count(*) FROM pg_roles");
    let nothing_made = || {
        assert_eq!(new.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'bubblegum'"), "0");
        assert_eq!(new.sql("postgres", "SELECT count(*) FROM pg_roles"), roles_before);
    };

    // Without --owner the roles are needed and solo may not create them: said before anything is changed.
    let out = p.run(&["restore", &id, "--source", "db", "--to-postgres", &url]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("role solo cannot create roles") && err.contains("app, app_ro_user and readonly"), "{err}");
    assert!(err.contains("--owner ROLE or --no-owner"), "{err}");
    nothing_made();
    // --roles skip creates none, and the owner is missing: said clearly, nothing made.
    let out = p.run(&["restore", &id, "--source", "db", "--to-postgres", &url, "--roles", "skip"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("role app owns objects of the database and does not exist on the target"),
        "{}",
        stderr(&out)
    );
    nothing_made();

    let out = p.run(&["restore", &id, "--source", "db", "--to-postgres", &url, "--owner", "solo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("naming role readonly") && err.contains("left out"), "{err}");
    assert!(err.contains("privileges of role readonly on database bubblegum were left out"), "{err}");
    assert_eq!(new.sql("bubblegum", &NOT_OWNED.replace("{role}", "solo")), "", "objects not owned by solo");
    assert_eq!(
        new.sql("postgres", "SELECT datacl::text FROM pg_database WHERE datname = 'bubblegum'"),
        "{solo=CTc/solo}"
    );
    // The same database but for owners and grants, and the policy that applied only to readonly.
    assert!(err.contains("row-security policy visible on app.users was left out"), "{err}");
    let plain = ["--no-owner", "--no-privileges"];
    let original = p.old.dump_with("bubblegum", &plain);
    let without_policy = original.replace(POLICY, "");
    assert_ne!(without_policy, original);
    assert_same(&new.dump_with("bubblegum", &plain), &without_policy, "the database without owners and grants");
    assert_eq!(sql_as(&new, "solo", "solo-pw", "bubblegum", "SELECT count(*) FROM app.users"), "100");

    // As the superuser: --owner solo gives solo everything all the same (the extension is created as solo), and
    // --no-owner gives it all to the superuser.
    p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("for_solo"), "--owner", "solo"]);
    assert_eq!(new.sql("for_solo", &NOT_OWNED.replace("{role}", "solo")), "", "objects not owned by solo");
    p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("mine"), "--no-owner"]);
    assert_eq!(new.sql("mine", &NOT_OWNED.replace("{role}", "postgres")), "", "objects not owned by postgres");
    assert_same(&new.dump_with("mine", &plain), &without_policy, "the --no-owner database without owners and grants");

    // As the superuser, with the owner made by hand (NOLOGIN) and --roles skip: the owner keeps everything and is
    // not altered; the roles that are missing stay missing and their privileges are left out.
    new.sql("postgres", "CREATE ROLE app NOLOGIN");
    let out =
        p.ok(&["restore", &id, "--source", "db", "--to-postgres", &new.url("partial"), "--roles", "skip", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["roles_missing"], serde_json::json!(["app_ro_user", "readonly"]), "{v}");
    assert_eq!(v["roles_created"], serde_json::json!([]), "{v}");
    assert_eq!(new.sql("partial", &NOT_OWNED.replace("{role}", "app")), "", "objects not owned by app");
    assert_eq!(
        new.sql("postgres", "SELECT rolcanlogin::text || rolcreatedb::text FROM pg_roles WHERE rolname = 'app'"),
        "falsefalse"
    );

    // A provider that hands out one empty database and lets its role into no other: restored into that one.
    new.sql("postgres", "CREATE DATABASE given OWNER solo");
    new.sql("postgres", "REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC");
    let given = new.url_as("solo", "solo-pw", "given");
    p.ok(&["restore", &id, "--source", "db", "--to-postgres", &given, "--owner", "solo"]);
    assert_eq!(new.sql("given", &NOT_OWNED.replace("{role}", "solo")), "", "objects not owned by solo");
}

#[test]
fn a_tablespace_the_new_server_cannot_make_stops_the_restore_and_leaves_nothing_behind() {
    let old = PgServer::start();
    let disk = old.server_dir();
    old.sql("postgres", &format!("CREATE TABLESPACE fast LOCATION '{}'", disk.path().display()));
    old.sql("postgres", "CREATE ROLE inventory LOGIN PASSWORD 'inv-pw'");
    old.sql("postgres", "GRANT CREATE ON TABLESPACE fast TO inventory");
    old.sql("postgres", "CREATE DATABASE stock OWNER inventory");
    old.sql(
        "stock",
        "SET ROLE inventory; CREATE TABLE items (id int PRIMARY KEY) TABLESPACE fast; INSERT INTO items SELECT generate_series(1, 10)",
    );
    let env = Env::new();
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[jobs.stock.sources]]\nname = \"db\"\nkind = \"postgres\"\nurl = \"env:STOCK_URL\"\n",
            env.repo
        ),
    )
    .unwrap();
    let gv = |args: &[&str]| {
        env.cmd().env("GUMVAULT_CONFIG", &config).env("STOCK_URL", old.url("stock")).args(args).output().unwrap()
    };
    let out = gv(&["run", "stock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let original = old.dump("stock");
    let tablespace = "SELECT spcname || ' ' || pg_get_userbyid(spcowner) || ' ' || spcacl::text FROM pg_tablespace WHERE spcname = 'fast'";
    let original_tablespace = old.sql("postgres", tablespace);

    // The tablespace's directory is still the old server's: it cannot be made there, and the role made for the
    // restore is dropped again.
    let new = PgServer::start();
    let out = gv(&["restore", "latest", "--source", "db", "--to-postgres", &new.url("stock")]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("creating tablespace fast at") && err.contains("its location on the old server"), "{err}");
    assert!(err.contains("dropped again what this restore had created: roles inventory"), "{err}");
    assert_eq!(new.sql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'inventory'"), "0");
    assert_eq!(new.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'stock'"), "0");

    // The old server is gone and its disk is free: the tablespace is made where it was, with its privileges.
    old.sql("postgres", "DROP DATABASE stock");
    old.sql("postgres", "DROP TABLESPACE fast");
    let out = gv(&["restore", "latest", "--source", "db", "--to-postgres", &new.url("stock")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created tablespace fast"));
    assert_eq!(new.sql("postgres", tablespace), original_tablespace);
    assert_same(&new.dump("stock"), &original, "pg_dump of the restored database");
}

#[test]
fn test_restore_with_the_applications_own_role_says_admin_url_is_the_fix() {
    let pg = PgServer::start();
    pg.sql("postgres", "CREATE ROLE shop LOGIN PASSWORD 'shop-pw'");
    pg.sql("postgres", "CREATE DATABASE shop OWNER shop");
    sql_as(&pg, "shop", "shop-pw", "shop", "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)");
    let env = Env::new();
    let config = env.path("gumvault.toml");
    let write = |admin: &str| {
        std::fs::write(
            &config,
            format!(
                "[repository]\nurl = \"{}\"\n\n[[jobs.shop.sources]]\nname = \"db\"\nkind = \"postgres\"\nurl = \"env:SHOP_URL\"\n\n[jobs.shop.test_restore]\n{admin}queries = [{{ sql = \"SELECT count(*) FROM orders\", min = 2 }}]\n",
                env.repo
            ),
        )
        .unwrap()
    };
    write("");
    let run = |args: &[&str]| {
        env.cmd()
            .env("GUMVAULT_CONFIG", &config)
            .env("SHOP_URL", pg.url_as("shop", "shop-pw", "shop"))
            .env("ADMIN_URL", pg.url("postgres"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["run", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Not a superuser: the record says the passwords could not be read, and holds none.
    let record = String::from_utf8_lossy(&run(&["dump", "latest", "/db/database.json"]).stdout).into_owned();
    assert!(record.contains("\"roles_with_passwords\": false") && !record.contains("SCRAM"), "{record}");

    let out = run(&["test-restore", "shop"]);
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("permission denied to create database"), "{err}");
    assert!(err.contains("set admin_url in [jobs.shop.test_restore] (test_restore.admin_url)"), "{err}");
    assert!(!err.contains("shop-pw"), "a password leaked: {err}");

    write("admin_url = \"env:ADMIN_URL\"\n");
    let out = run(&["test-restore", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSED"));
}

/// A loader given part of a dump and then an error (the repository failed mid-way) commits nothing: it is killed
/// before its input is closed, for plain SQL, for SQL through the role rewriter, and for a custom archive through
/// pg_restore --file=- and the rewriter.
#[test]
fn a_dump_cut_short_is_never_committed() {
    use gumvault::config::DumpFormat;
    use gumvault::sources::pg_conn::PgConn;
    use gumvault::sources::pg_load::load_dump_with;
    use gumvault::sources::pg_rewrite::RoleRules;

    let pg = PgServer::start();
    pg.create_db("src");
    pg.sql("src", "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 100000)");
    let archive = pg.client("pg_dump").args(["--format=custom", "--compress=0", "src"]).output().unwrap().stdout;
    let script = b"CREATE TABLE t (a int);\nCOPY t (a) FROM stdin;\n1\n2\n".to_vec();
    let cases = [
        ("plain", DumpFormat::Plain, None, script.clone()),
        ("plain rewritten", DumpFormat::Plain, Some(RoleRules::default()), script),
        ("custom rewritten", DumpFormat::Custom, Some(RoleRules::default()), archive[..archive.len() * 3 / 4].to_vec()),
    ];
    for (i, (what, format, rules, bytes)) in cases.into_iter().enumerate() {
        let db = format!("half{i}");
        pg.create_db(&db);
        let conn = PgConn::parse(&pg.url(&db)).unwrap();
        let result = load_dump_with(&conn, format, rules, |w| {
            w.write_all(&bytes).unwrap();
            w.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
            Err(gumvault::Error::SourceFailed("the repository failed mid-way".into()))
        });
        let err = result.expect_err(what).to_string();
        assert!(err.contains("the repository failed mid-way"), "{what}: {err}");
        assert_eq!(
            pg.sql(&db, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
            "0",
            "{what}: a cut dump was committed"
        );
    }
}
