//! Errors of the scratch files, which all name the directory they live in.

use std::path::Path;

use crate::error::Error;

/// The error of a scratch file operation in `dir`.
pub fn error(action: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = dir.to_path_buf();
    move |source| Error::Io { action, path, source }
}
