//! moto's S3 server (PyPI `moto[server]`, installed by scripts/install-test-deps.sh) on 127.0.0.1: another S3
//! implementation than s3s-fs, with versioning and Object Lock. Buckets are made, and objects inspected or
//! attacked, with boto3 (which moto brings along): a client that is not gumvault's.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Any keys work with moto; these are the ones the tests hand to gumvault and boto3.
pub const ACCESS_KEY: &str = "gumvault-moto-access";
pub const SECRET_KEY: &str = "gumvault-moto-secret";

/// A running moto server, stopped on drop. Its state lives in memory only.
pub struct MotoServer {
    child: Child,
    pub port: u16,
    python: String,
}

/// `moto_server` and the Python that has boto3: the virtualenv scripts/install-test-deps.sh makes, else PATH.
fn binaries() -> (String, String) {
    let venv = std::env::var("GUMVAULT_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/.local/share/gumvault-test-venv", std::env::var("HOME").unwrap_or_default()));
    let in_venv = format!("{venv}/bin/moto_server");
    if std::path::Path::new(&in_venv).exists() {
        return (in_venv, format!("{venv}/bin/python3"));
    }
    if Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return ("moto_server".into(), "python3".into());
    }
    panic!("moto_server is not installed: run scripts/install-test-deps.sh (it installs moto[server] from PyPI)");
}

impl MotoServer {
    /// Starts a server on a free port (a new port is tried when another test took it first).
    pub fn start() -> MotoServer {
        let (bin, python) = binaries();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let mut server = MotoServer { child, port, python: python.clone() };
            if server.wait_listening() {
                return server;
            }
        }
        panic!("moto_server exited at start five times");
    }

    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(Instant::now() < deadline, "moto_server did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.child.try_wait().unwrap().is_none()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An `s3://` repository URL for a bucket and prefix on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3://{bucket}/{prefix}?endpoint={}&region=us-east-1", self.endpoint())
    }

    /// Runs a Python snippet with `s3` bound to a boto3 client of this server; returns its stdout, panicking
    /// with its stderr when it fails.
    pub fn py(&self, code: &str) -> String {
        let out = self.py_output(code);
        assert!(out.status.success(), "boto3 script failed:\n{code}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`MotoServer::py`] without the assertion.
    pub fn py_output(&self, code: &str) -> std::process::Output {
        let prelude = format!(
            "import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{ACCESS_KEY}', aws_secret_access_key='{SECRET_KEY}')\n",
            self.endpoint()
        );
        Command::new(&self.python).arg("-c").arg(format!("{prelude}{code}")).output().expect("run python3")
    }

    /// A bucket with versioning and, when `lock`, Object Lock enabled.
    pub fn bucket(&self, name: &str, lock: bool) {
        let flag = if lock { "True" } else { "False" };
        self.py(&format!(
            "s3.create_bucket(Bucket='{name}', ObjectLockEnabledForBucket={flag})\ns3.put_bucket_versioning(Bucket='{name}', VersioningConfiguration={{'Status': 'Enabled'}})"
        ));
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
