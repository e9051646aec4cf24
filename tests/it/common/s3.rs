//! A real S3-compatible server (s3s-fs) on 127.0.0.1 for tests; installed by scripts/install-test-deps.sh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "gumvault-test-access";
pub const SECRET_KEY: &str = "gumvault-test-secret";

/// A running s3s-fs, stopped on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

fn binary() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    for cand in [format!("{home}/.cargo/bin/s3s-fs"), "/usr/local/bin/s3s-fs".into()] {
        if Path::new(&cand).exists() {
            return cand.into();
        }
    }
    panic!("s3s-fs is not installed: run scripts/test.sh (it installs s3s-fs from crates.io)");
}

impl S3Server {
    /// Starts a server serving `root`, with `buckets` created as directories.
    /// A free port can be taken by another test before the server binds it: then it exits, and a new port is tried.
    pub fn start(root: &Path, buckets: &[&str]) -> S3Server {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            if let Some(server) = S3Server::try_start_on(root, buckets, port) {
                return server;
            }
        }
        panic!("s3s-fs exited at start five times (see above)");
    }

    /// Starts a server on a given port (to bring a stopped one back at the same URL).
    pub fn start_on(root: &Path, buckets: &[&str], port: u16) -> S3Server {
        S3Server::try_start_on(root, buckets, port).unwrap_or_else(|| panic!("s3s-fs could not serve on port {port}"))
    }

    /// None when the server exited before it listened (its port was taken).
    fn try_start_on(root: &Path, buckets: &[&str], port: u16) -> Option<S3Server> {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).unwrap();
        }
        let child = Command::new(binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let mut server = S3Server { child, port, root: root.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if server.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "s3s-fs did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Something listens; make sure it is this server and not another test's that took the port.
        std::thread::sleep(Duration::from_millis(50));
        server.child.try_wait().unwrap().is_none().then_some(server)
    }

    /// A client of `bucket` on this server with the test credentials, to put and read objects directly.
    pub fn bucket(&self, bucket: &str) -> opendal::blocking::Operator {
        let src = gumvault::config::S3Source {
            name: "test".into(),
            optional: false,
            url: self.url(bucket, ""),
            include: vec![],
            exclude: vec![],
            access_key_id: Some(gumvault::config::Secret::new(ACCESS_KEY)),
            secret_access_key: Some(gumvault::config::Secret::new(SECRET_KEY)),
            concurrency: None,
        };
        gumvault::sources::s3::open_bucket(&src.url, Some(&src)).unwrap()
    }

    /// An `s3://` repository URL for a bucket and prefix on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{}&region=us-east-1", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
