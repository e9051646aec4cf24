//! A TCP proxy that adds a fixed delay to every byte in each direction, so a server on 127.0.0.1 answers like
//! one in a distant region: every request waits DELAY_MS on its way there and DELAY_MS on its way back, a new
//! connection one round trip more. Bandwidth is not limited: bytes in flight are forwarded in order, as on a long
//! fat network. It is `benches/latency-proxy.py` in Rust, for `benches/latency.sh`: on a small machine the
//! Python proxy spent a core-second per 1.4 GB it forwarded, CPU the measured tools then lacked, so distant figures
//! measured the proxy as much as the distance.
//!
//! usage: cargo run --release --example latency_proxy -- LISTEN_PORT TARGET_PORT DELAY_MS

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, target, delay] = args.as_slice() else {
        eprintln!("usage: latency_proxy LISTEN_PORT TARGET_PORT DELAY_MS");
        std::process::exit(2);
    };
    let (Ok(listen), Ok(target), Ok(delay)) = (listen.parse::<u16>(), target.parse::<u16>(), delay.parse::<f64>())
    else {
        eprintln!("latency_proxy: ports are numbers up to 65535, the delay a number of milliseconds");
        std::process::exit(2);
    };
    let delay = Duration::from_secs_f64(delay / 1000.0);
    let listener = match TcpListener::bind(("127.0.0.1", listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("latency_proxy: cannot listen on 127.0.0.1:{listen}: {e}");
            std::process::exit(1);
        }
    };
    for client in listener.incoming().flatten() {
        std::thread::spawn(move || connect(client, target, delay));
    }
}

/// Waits the handshake's round trip, connects to the target and forwards both ways.
fn connect(client: TcpStream, target: u16, delay: Duration) {
    std::thread::sleep(2 * delay);
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    let up = std::thread::spawn(move || forward(client, server, delay));
    forward(server2, client2, delay);
    let _ = up.join();
}

/// Forwards what `from` sends to `to`, each piece `delay` after it arrived; ends `to`'s writing when `from` ends.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, piece) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&piece).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}
