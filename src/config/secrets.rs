//! Which environment variables the config reads secrets from, so the programs gumvault starts do not inherit
//! them: every `env:` reference (the repository password, source URLs, S3 keys, SMTP login, the status token, a
//! test restore's admin URL), `DATABASE_URL` when a postgres source falls back to it, and the variables an `env`
//! source backs up by name (an application's secrets, by the config's own word).

use std::collections::BTreeSet;

use super::file::Config;
use super::sources::SourceSpec;
use super::values::Secret;
use crate::children::ChildEnv;

impl Config {
    /// The environment of a program gumvault starts for this config (pg_dump, redis-cli, `backup --command`, the
    /// password command): without the variables of [`Config::secret_variables`]. The alert command adds what
    /// `[alerts] command_env` names with [`ChildEnv::passing`].
    pub fn child_env(&self) -> ChildEnv {
        ChildEnv::default().withholding(self.secret_variables())
    }

    /// The names of the environment variables this config reads secrets from.
    pub fn secret_variables(&self) -> BTreeSet<String> {
        let mut secrets: Vec<&Secret> = Vec::new();
        let mut names = BTreeSet::new();
        secrets.extend(&self.repository.password);
        secrets.extend(&self.http.token);
        if let Some(email) = &self.alerts.email {
            secrets.extend(email.username.iter().chain(&email.password));
        }
        for job in self.jobs.values() {
            secrets.extend(job.test_restore.as_ref().and_then(|t| t.admin_url.as_ref()));
            for source in &job.sources {
                match source.get_ref() {
                    SourceSpec::Postgres(p) => match &p.url {
                        Some(url) => secrets.push(url),
                        None => {
                            names.insert("DATABASE_URL".to_string());
                        }
                    },
                    SourceSpec::PostgresPhysical(p) => match &p.url {
                        Some(url) => secrets.push(url),
                        None => {
                            names.insert("DATABASE_URL".to_string());
                        }
                    },
                    SourceSpec::Redis(r) => secrets.extend(&r.url),
                    SourceSpec::S3(s) => secrets.extend(s.access_key_id.iter().chain(&s.secret_access_key)),
                    SourceSpec::Env(e) => names.extend(e.names.iter().cloned()),
                    SourceSpec::Files(_) => {}
                }
            }
        }
        names.extend(secrets.into_iter().filter_map(Secret::env_name).map(str::to_string));
        names
    }
}
