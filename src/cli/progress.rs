//! Progress bars on a terminal, nothing when standard error is not one.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar redrawn from a closure until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts a spinner line whose message `render` produces every 100 ms; `None` when not a terminal or quiet.
    pub fn start(quiet: bool, render: impl Fn() -> (String, Option<(u64, u64)>) + Send + 'static) -> Option<Ticker> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let bar = ProgressBar::new(0);
            let spinner = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("valid template");
            let with_total = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template");
            let counting = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {bytes_per_sec} {msg}")
                .expect("valid template");
            bar.set_style(spinner.clone());
            while !flag.load(Ordering::Relaxed) {
                let (msg, pos) = render();
                match pos {
                    Some((done, total)) if total > 0 => {
                        bar.set_style(with_total.clone());
                        bar.set_length(total);
                        bar.set_position(done.min(total));
                    }
                    Some((done, _)) => {
                        bar.set_style(counting.clone());
                        bar.set_position(done);
                    }
                    None => bar.set_style(spinner.clone()),
                }
                bar.set_message(msg);
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Some(Ticker { stop, handle: Some(handle) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
