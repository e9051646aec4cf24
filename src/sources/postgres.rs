//! The PostgreSQL source: `pg_dump` (or the primary-key ordered dump) streamed into one file of the source's
//! directory, `dump.sql` or `dump.pgdump`, never staged on disk; beside it `database.json`, what the dump does not
//! hold and a restore onto a new server needs (the database's properties, the roles and tablespaces it uses:
//! [`super::pg_record`]).

use super::pg_conn::{PgConn, dump_command};
use super::pg_record::{self, RECORD_FILE};
use super::{ordered_dump, process};
use crate::config::{PostgresSource, RowOrder};
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::source::{JobSource, Profile};

impl JobSource for PostgresSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Stream
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, _parent: Option<&Tree>) -> Result<Id> {
        let conn = PgConn::from_source(self).map_err(Error::into_source_failure)?.with_child_env(ctx.child_env.clone());
        let record = pg_record::capture(&conn)?;
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::SourceFailed(e.to_string()))?;
        let properties = format!("the properties of {}", conn.display());
        let record = ctx.save_stream_file(RECORD_FILE, 0o600, json.as_slice(), &properties)?;
        let what = format!("pg_dump of {}", conn.display());
        let file = self.format.file_name();
        let node = if self.order == RowOrder::PrimaryKey {
            let dump = ordered_dump::start(&conn, self.pg_dump.as_deref())?;
            ctx.save_stream_file(file, 0o600, dump, &what).map_err(|e| match e {
                Error::Io { source, .. } => Error::SourceFailed(source.to_string()),
                other => other,
            })?
        } else {
            let (running, stdout) = process::spawn(dump_command(self, &conn), "pg_dump")?;
            let node = ctx.save_stream_file(file, 0o600, stdout, &what);
            running.finish(node)?
        };
        ctx.save_tree(vec![record, node])
    }
}
