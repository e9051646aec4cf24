//! The files source: paths of this machine (config files, say), walked like `gumvault backup PATH`, with the
//! source's own exclude patterns.

use crate::config::FilesSource;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::source::{JobSource, Profile};
use crate::ops::backup::{fs, normalize_paths};
use crate::ops::globs::PathGlobs;

impl JobSource for FilesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "files"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Files
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, parent: Option<&Tree>) -> Result<Id> {
        let excludes = PathGlobs::new(&self.exclude, "exclude")?;
        let files_ctx = ctx.derive(ctx.params, &excludes);
        let paths = normalize_paths(&self.paths).map_err(Error::into_source_failure)?;
        fs::save_paths(&files_ctx, &paths, parent)
    }
}
