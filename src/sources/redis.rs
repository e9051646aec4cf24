//! Redis: a consistent RDB snapshot of a running server, streamed from `redis-cli --rdb -` (the replication
//! protocol: the server forks and sends a point-in-time dump). The password goes in `REDISCLI_AUTH`, never argv;
//! redis-cli gets no other secret of gumvault's (`ChildEnv`).

use std::io::Read;
use std::path::PathBuf;

use super::process;
use crate::config::RedisSource;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::source::{JobSource, Profile};

/// The default server when none is configured.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

impl JobSource for RedisSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Stream
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, _parent: Option<&Tree>) -> Result<Id> {
        save(ctx, self)
    }
}

fn save(ctx: &BackupContext<'_, '_>, src: &RedisSource) -> Result<Id> {
    let raw = match &src.url {
        Some(s) => s.resolve().map_err(Error::into_source_failure)?,
        None => DEFAULT_URL.to_string(),
    };
    let (url, password) = split_url(&raw)?;
    let program = src.redis_cli.clone().unwrap_or_else(|| PathBuf::from("redis-cli"));
    let mut cmd = ctx.child_env.command(&program);
    cmd.arg("-u").arg(url.as_str()).args(["--no-auth-warning", "--rdb", "-"]);
    if url.scheme() == "rediss" {
        cmd.arg("--tls");
    }
    cmd.env_remove("REDISCLI_AUTH");
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    let (running, stdout) = process::spawn(cmd, "redis-cli")?;
    let mut checked = MagicCheck { inner: stdout, head: Vec::new() };
    let what = format!("RDB dump of {}", display(&url));
    let node = ctx.save_stream_file("dump.rdb", 0o600, &mut checked, &what);
    let node = running.finish(node)?;
    if !checked.head.starts_with(b"REDIS") {
        return Err(Error::SourceFailed(format!(
            "redis-cli sent no RDB dump from {} (it starts with {:?})",
            display(&url),
            String::from_utf8_lossy(&checked.head)
        )));
    }
    ctx.save_tree(vec![node])
}

/// The URL without its password, and the password.
fn split_url(raw: &str) -> Result<(url::Url, Option<String>)> {
    let bad = |why: String| {
        Error::SourceFailed(format!("invalid Redis URL: {why} (expected redis://[:password@]host:port[/db])"))
    };
    let mut url = url::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(bad(format!("scheme {:?}", url.scheme())));
    }
    let password = url.password().map(|p| {
        url::form_urlencoded::parse(format!("p={}", p.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    });
    let _ = url.set_password(None);
    Ok((url, password))
}

fn display(url: &url::Url) -> String {
    format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or("?"), url.port().unwrap_or(6379))
}

/// Remembers the first bytes read, to check the RDB magic.
struct MagicCheck<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R: Read> Read for MagicCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.head.len() < 9 {
            let take = (9 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_leave_the_url() {
        let (u, p) = super::split_url("redis://:s3cr%40t@127.0.0.1:6380/2").unwrap();
        assert_eq!(p.as_deref(), Some("s3cr@t"));
        assert!(!u.as_str().contains("s3cr"));
        assert!(super::split_url("http://x").is_err());
    }
}
