//! Environment variables: selected by name, by prefix, or a whole `.env` file, stored as files of mode 0600.
//! Values never appear in messages; missing names are named.

use std::os::unix::ffi::OsStrExt;

use crate::config::EnvSource;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::source::{JobSource, Profile};

/// The file holding variables selected by name or prefix.
pub const VARIABLES_FILE: &str = "variables.env";

impl JobSource for EnvSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "env"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Files
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, _parent: Option<&Tree>) -> Result<Id> {
        save(ctx, self)
    }
}

fn save(ctx: &BackupContext<'_, '_>, src: &EnvSource) -> Result<Id> {
    let mut nodes = Vec::new();
    if !src.names.is_empty() || src.prefix.is_some() {
        let text = render(src)?;
        nodes.push(ctx.save_stream_file(VARIABLES_FILE, 0o600, text.as_slice(), "environment")?);
    }
    if let Some(path) = &src.file {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::SourceFailed(format!("cannot read the env file {}: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
            .filter(|n| n != VARIABLES_FILE)
            .unwrap_or_else(|| "file.env".to_string());
        nodes.push(ctx.save_stream_file(&name, 0o600, bytes.as_slice(), &path.display().to_string())?);
    }
    ctx.save_tree(nodes)
}

/// `NAME=value` lines in `.env` syntax, sorted by name.
fn render(src: &EnvSource) -> Result<Vec<u8>> {
    let mut vars: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for name in &src.names {
        let value = std::env::var_os(name)
            .ok_or_else(|| Error::SourceFailed(format!("environment variable {name} is not set")))?;
        vars.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    if let Some(prefix) = &src.prefix {
        for (k, v) in std::env::vars_os() {
            if k.as_bytes().starts_with(prefix.as_bytes()) {
                vars.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
            }
        }
    }
    vars.sort();
    vars.dedup();
    let mut out = Vec::new();
    for (k, v) in vars {
        out.extend_from_slice(&k);
        out.push(b'=');
        out.extend_from_slice(&quote(&v));
        out.push(b'\n');
    }
    Ok(out)
}

/// Leaves plain values bare; otherwise double quotes with `\\`, `\"`, `\$`, `` \` ``, `\n`, `\r` escaped.
fn quote(v: &[u8]) -> Vec<u8> {
    let plain = |c: &u8| c.is_ascii_alphanumeric() || b"_./:@%+,-".contains(c);
    if v.iter().all(plain) {
        return v.to_vec();
    }
    let mut out = vec![b'"'];
    for &c in v {
        match c {
            b'\\' | b'"' | b'$' | b'`' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(c),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::quote(b"postgres://u@h:5432/db"), b"postgres://u@h:5432/db");
        assert_eq!(super::quote(b"a b\"c$\n"), b"\"a b\\\"c\\$\\n\"");
    }
}
