//! The configuration file (`gumvault.toml`): the repository, where its password comes from, named jobs made of
//! sources, alerts and the status endpoint. Parsing is strict: unknown keys and bad values are errors naming the
//! file, the line and the key. Nothing here touches the network or runs programs; secrets are resolved only when
//! a command needs them. Split by concern: [`file`](mod@file) (the whole file), [`repository`], [`jobs`], [`sources`],
//! [`alerts`], [`values`] (schedules, durations, globs, secrets), `validate` and `secrets` (the variables children
//! do not inherit).

pub mod alerts;
pub mod file;
pub mod jobs;
pub mod repository;
mod secrets;
pub mod sources;
mod validate;
pub mod values;

pub use alerts::{AlertsConfig, EmailConfig, HttpConfig, SmtpTls};
pub use file::{CONFIG_ENV, Config};
pub use jobs::{CheckSchedule, Job, PruneSchedule, Retention, TestRestore, TestRestoreSource, VerifyQuery};
pub use repository::{RegionConfig, RepositoryConfig};
pub use sources::{
    DumpFormat, EnvSource, FilesSource, PhysicalSource, PostgresSource, RedisSource, RowOrder, S3Source, SourceSpec,
    WalMode,
};
pub use values::{Duration, Glob, Schedule, Secret};

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::Result;

    const EXAMPLE: &str = r#"
[repository]
url = "/var/backups/gumvault"
password = "env:GUMVAULT_PASSWORD"

[[jobs.bubblegum.sources]]
name = "db"
kind = "postgres"
url = "env:DATABASE_URL"

[[jobs.bubblegum.sources]]
name = "uploads"
kind = "s3"
url = "s3://bubblegum-uploads?endpoint=http://127.0.0.1:9000&region=us-east-1"
include = ["*.jpg", "*.png", "*.pdf"]

[[jobs.bubblegum.sources]]
name = "cache"
kind = "redis"
url = "redis://127.0.0.1:6379"
optional = true

[[jobs.bubblegum.sources]]
name = "config"
kind = "files"
paths = ["/etc/bubblegum"]
exclude = ["*.tmp"]

[[jobs.bubblegum.sources]]
name = "env"
kind = "env"
names = ["DATABASE_URL", "STRIPE_SECRET_KEY"]
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/gumvault.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("config should be rejected").to_string()
    }

    #[test]
    fn the_issue_example_parses_as_written() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.repository.url.as_deref(), Some("/var/backups/gumvault"));
        let job = c.job("bubblegum").unwrap();
        let kinds: Vec<(&str, &str, bool)> =
            job.sources.iter().map(|s| (s.get_ref().name(), s.get_ref().kind(), s.get_ref().optional())).collect();
        assert_eq!(
            kinds,
            [
                ("db", "postgres", false),
                ("uploads", "s3", false),
                ("cache", "redis", true),
                ("config", "files", false),
                ("env", "env", false)
            ]
        );
        let SourceSpec::S3(s3) = job.source("uploads").unwrap() else { panic!("uploads is s3") };
        assert_eq!(s3.include, [Glob("*.jpg".into()), Glob("*.png".into()), Glob("*.pdf".into())]);
        assert_eq!(job.test_restore_source().unwrap().name, "db");
    }

    #[test]
    fn a_lone_job_needs_no_name() {
        let one = parse("[[jobs.app.sources]]\nname = \"e\"\nkind = \"env\"\nnames = [\"A\"]\n").unwrap();
        assert_eq!(one.job_or_only(None).unwrap().0, "app");
        assert!(one.job_or_only(Some("other")).is_err());
        let env = "kind = \"env\"\nnames = [\"A\"]\n";
        let two =
            parse(&format!("[[jobs.a.sources]]\nname = \"e\"\n{env}[[jobs.b.sources]]\nname = \"e\"\n{env}")).unwrap();
        assert_eq!(two.job_or_only(Some("b")).unwrap().0, "b");
        let e = two.job_or_only(None).unwrap_err().to_string();
        assert!(e.contains("several jobs (a, b)"), "{e}");
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e =
            err("[repository]\nurl = \"/x\"\n\n[[jobs.a.sources]]\nname = \"db\"\nkind = \"postgres\"\nurll = \"x\"\n");
        assert!(e.contains("/etc/gumvault.toml"), "{e}");
        assert!(e.contains("urll"), "{e}");
        assert!(e.contains("line 4") || e.contains("line 7"), "{e}");
        let e = err("[repositry]\nurl = \"/x\"\n");
        assert!(e.contains("repositry") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        let e = err("[[jobs.a.sources]]\nname = \"x\"\nkind = \"ftp\"\n");
        assert!(e.contains("ftp"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"u\"\nkind = \"s3\"\nurl = \"s3://b\"\ninclude = [\"[\"]\n");
        assert!(e.contains("invalid glob") && e.contains("line"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"c\"\nkind = \"files\"\npaths = [\"relative/dir\"]\n");
        assert!(e.contains("line 1") && e.contains("paths") && e.contains("absolute"), "{e}");
        let e = err(
            "[[jobs.a.sources]]\nname = \"c\"\nkind = \"files\"\npaths = [\"/a\"]\n[[jobs.a.sources]]\nname = \"c\"\nkind = \"env\"\nnames = [\"A\"]\n",
        );
        assert!(e.contains("line 5") && e.contains("same name"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"../x\"\nkind = \"env\"\nnames = [\"A\"]\n");
        assert!(e.contains("source names"), "{e}");
        let e = err("[alerts.email]\nserver = \"x:25\"\nca_file = \"ca.pem\"\nfrom = \"a@b.c\"\nto = []\n");
        assert!(e.contains("alerts.email.ca_file") && e.contains("absolute"), "{e}");
        let e = err(
            "[alerts.email]\nserver = \"x:25\"\ntls = \"none\"\nca_file = \"/ca.pem\"\nfrom = \"a@b.c\"\nto = []\n",
        );
        assert!(e.contains("alerts.email.ca_file") && e.contains("needs TLS"), "{e}");
        let e = err("[alerts.email]\nserver = \"x:25\"\ntls = \"none\"\nstarttls = false\nfrom = \"a@b.c\"\nto = []\n");
        assert!(e.contains("alerts.email.starttls") && e.contains("not both"), "{e}");
        let older = parse("[alerts.email]\nserver = \"x:25\"\nstarttls = false\nfrom = \"a@b.c\"\nto = []\n").unwrap();
        assert_eq!(older.alerts.email.unwrap().tls(), SmtpTls::None, "the older spelling still works");
        let e = err("[repository]\npassword = \"file:relative\"\n");
        assert!(e.contains("absolute path") && e.contains("line 2"), "{e}");
        let e = err(
            "[[jobs.a.sources]]\nname = \"db\"\nkind = \"postgres\"\nformat = \"custom\"\norder = \"primary-key\"\n",
        );
        assert!(e.contains("line 1") && e.contains("order") && e.contains("plain"), "{e}");
        let e = err("[jobs.a]\nsources = []\n");
        assert!(e.contains("at least one source"), "{e}");
        let e = err("[[jobs.a.sources]]\nname = \"e\"\nkind = \"env\"\n");
        assert!(e.contains("names, a prefix or a file"), "{e}");
    }

    #[test]
    fn errors_name_the_key_but_never_echo_a_value() {
        let cases = [
            // Syntax errors on a line holding a literal secret: toml's own message would quote the line.
            ("[repository]\npassword = \"hunter2-s3cret\" trailing\n", "line 2", "repository.password"),
            ("[repository]\nurl = \"/x\"\npassword = \"hunter2-s3cret\n", "line 3", "repository.password"),
            ("[repository]\npassword = hunter2-s3cret\n", "line 2", "repository.password"),
            // Values of the wrong type: serde's message would quote them.
            ("[repository]\npassword = 4242424242\n", "line 2", "repository.password"),
            ("[alerts]\nwebhooks = \"https://hooks.example/T0/B0/hunter2-s3cret\"\n", "line 2", "alerts.webhooks"),
            (
                "[[jobs.a.sources]]\nname = \"db\"\nkind = \"postgres\"\nurl = [\"postgres://u:hunter2-s3cret@h/db\"]\n",
                "line",
                "",
            ),
            ("[http]\ntoken = 4242424242.5\n", "line 2", "http.token"),
            ("[repository]\npassword = \"env:\"\n", "line 2", "repository.password"),
        ];
        for (text, line, key) in cases {
            let e = err(text);
            assert!(!e.contains("hunter2") && !e.contains("s3cret") && !e.contains("4242"), "{e}");
            assert!(e.contains("/etc/gumvault.toml") && e.contains(line) && e.contains(key), "{e}");
        }
        let e = err("[alerts]\ncommand_env = [\"GUMVAULT_PASSWORD\"]\n");
        assert!(e.contains("alerts.command_env") && e.contains("never passed"), "{e}");
    }

    #[test]
    fn the_secret_variables_are_every_env_reference() {
        let c = parse(&format!(
            "{EXAMPLE}\n[[jobs.other.sources]]\nname = \"db\"\nkind = \"postgres\"\n[http]\ntoken = \"env:TOKEN\"\n\
             [alerts]\ncommand = \"true\"\ncommand_env = [\"TOKEN\"]\n"
        ))
        .unwrap();
        let names: Vec<String> = c.secret_variables().into_iter().collect();
        assert_eq!(names, ["DATABASE_URL", "GUMVAULT_PASSWORD", "STRIPE_SECRET_KEY", "TOKEN"]);
        assert_eq!(c.alerts.command_env, ["TOKEN"]);
    }

    #[test]
    fn secrets_resolve_without_showing_their_values() {
        let literal = Secret::new("hunter2");
        assert_eq!(literal.resolve().unwrap(), "hunter2");
        assert!(!format!("{literal:?}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = Secret::new(&format!("file:{}", file.display()));
        assert_eq!(from_file.resolve().unwrap(), "from-file");
        let missing = Secret::new("env:GUMVAULT_TEST_SURELY_UNSET_VARIABLE");
        assert!(missing.resolve().unwrap_err().to_string().contains("GUMVAULT_TEST_SURELY_UNSET_VARIABLE"));
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../../docs/gumvault.example.toml");
        let c = parse(text).unwrap();
        let job = c.job("bubblegum").unwrap();
        assert_eq!(job.sources.len(), 4);
        assert_eq!(job.test_restore.as_ref().unwrap().queries.len(), 2);
        let pitr = c.job("pitr").unwrap();
        assert_eq!(pitr.sources[0].get_ref().kind(), "postgres-physical");
        assert_eq!(pitr.rpo.map(|d| d.0.as_secs()), Some(3600));
        assert_eq!(c.job("uploads").unwrap().sources[0].get_ref().kind(), "s3");
    }

    #[test]
    fn test_restore_needs_a_postgres_source() {
        let e = err(
            "[jobs.a]\nsources = [{ name = \"c\", kind = \"files\", paths = [\"/a\"] }]\n[jobs.a.test_restore]\nqueries = [{ sql = \"SELECT 1\", min = 1 }]\n",
        );
        assert!(e.contains("no postgres source"), "{e}");
    }
}
