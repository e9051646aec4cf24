//! A small HTTP/1.1 proxy on 127.0.0.1 in front of a test server (the S3 server): it counts the requests that
//! pass and can refuse those whose request line contains a given text, as a storage that fails on demand. Each
//! request goes upstream on a connection of its own (`Connection: close`), so every request is seen and counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A running proxy; its threads end with the test process.
pub struct Proxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    refuse: Arc<Mutex<Option<String>>>,
}

impl Proxy {
    /// Proxies 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(Mutex::new(None::<String>));
        let (s, r) = (seen.clone(), refuse.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || relay(client, upstream, &s, &r));
            }
        });
        Proxy { port, seen, refuse }
    }

    /// Requests that reached the proxy so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Their request lines (`GET /bucket/path?… HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// From now on, answer 403 to every request whose request line contains `pattern` (`None`: pass all).
    pub fn refuse(&self, pattern: Option<&str>) {
        *self.refuse.lock().unwrap() = pattern.map(str::to_string);
    }
}

/// One client connection: its first request head is read, counted, refused or sent upstream with
/// `Connection: close`; then bytes flow both ways until the server closes.
fn relay(client: TcpStream, upstream: u16, seen: &Mutex<Vec<String>>, refuse: &Mutex<Option<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        let end = line == b"\r\n";
        if !String::from_utf8_lossy(&line).to_ascii_lowercase().starts_with("connection:") && !end {
            head.extend_from_slice(&line);
        }
        if end {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or(b"")).trim().to_string();
    seen.lock().unwrap().push(request_line.clone());
    let mut client = client;
    if refuse.lock().unwrap().as_deref().is_some_and(|p| request_line.contains(p)) {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>refused by the test proxy</Message></Error>";
        let _ = write!(
            client,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    if server.write_all(&head).is_err() {
        return;
    }
    // What the reader already buffered belongs to the body.
    let buffered = reader.buffer().to_vec();
    let _ = server.write_all(&buffered);
    let mut to_server = server.try_clone().unwrap();
    let mut from_client = reader.into_inner();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    let mut buf = [0u8; 64 << 10];
    loop {
        match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
