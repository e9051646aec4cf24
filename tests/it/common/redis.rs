//! A real Redis server on 127.0.0.1 for tests (Debian's redis-server), stopped on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// An empty server (no persistence of its own).
    pub fn start() -> RedisServer {
        RedisServer::spawn(&["--save", "", "--appendonly", "no"])
    }

    /// A server that loads `dir/dump.rdb` at start (to check a restored dump).
    pub fn load(dir: &Path) -> RedisServer {
        RedisServer::spawn(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.to_string_lossy(),
            "--dbfilename",
            "dump.rdb",
        ])
    }

    /// A free port can be taken by another test before the server binds it: then it exits, and a new port is tried.
    fn spawn(args: &[&str]) -> RedisServer {
        for _ in 0..5 {
            if let Some(server) = RedisServer::try_spawn(args) {
                return server;
            }
        }
        panic!("redis-server exited at start five times");
    }

    fn try_spawn(args: &[&str]) -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--repl-diskless-sync-delay", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/install-test-deps.sh");
        let mut server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.try_cli(&["PING"]).as_deref() != Some("PONG") {
            if server.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Something answers; make sure it is this server and not another test's that took the port.
        server.child.try_wait().unwrap().is_none().then_some(server)
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs a redis-cli command; returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
