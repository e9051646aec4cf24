//! The daemon's clock: real time, or simulated time that jumps from slot to slot (tests run weeks of schedule
//! in seconds), and the stop flag SIGTERM and SIGINT set.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// Set by SIGTERM/SIGINT (and when the daemon is done): the running task finishes, nothing new starts.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The simulated now (Unix seconds) for the status endpoint's thread; `i64::MIN` when time is real.
static SIMULATED_NOW: AtomicI64 = AtomicI64::new(i64::MIN);

/// Now as the daemon sees it: the endpoint judges backup ages against the same clock as the scheduler.
pub fn daemon_now() -> Timestamp {
    match SIMULATED_NOW.load(Ordering::Relaxed) {
        i64::MIN => crate::time::now(),
        secs => Timestamp::from_second(secs).unwrap_or_else(|_| crate::time::now()),
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT stop the daemon once the running task has finished.
pub fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// True once the daemon should stop.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Simulated or real time.
pub struct Clock {
    /// Simulated now and the end of the simulation.
    simulated: Option<(Timestamp, Timestamp)>,
}

impl Clock {
    /// Real time.
    pub fn real() -> Clock {
        Clock { simulated: None }
    }

    /// Simulated time from `from` to `until`.
    pub fn simulated(from: Timestamp, until: Timestamp) -> Clock {
        let clock = Clock { simulated: Some((from, until)) };
        clock.publish();
        clock
    }

    /// True when time is simulated (jumps from slot to slot).
    pub fn is_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    /// Now on this clock.
    pub fn now(&self) -> Timestamp {
        match self.simulated {
            Some((now, _)) => now,
            None => crate::time::now(),
        }
    }

    /// Makes a simulated now visible to [`daemon_now`].
    fn publish(&self) {
        if let Some((now, _)) = self.simulated {
            SIMULATED_NOW.store(now.as_second(), Ordering::Relaxed);
        }
    }

    /// Waits until `t` (or jumps there); false when the daemon should stop instead.
    pub fn wait_until(&mut self, t: Timestamp) -> bool {
        match &mut self.simulated {
            Some((now, end)) => {
                if t > *end || stopping() {
                    return false;
                }
                *now = (*now).max(t);
                self.publish();
                true
            }
            None => {
                while crate::time::now() < t {
                    if stopping() {
                        return false;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                !stopping()
            }
        }
    }

    /// Advances simulated time by what a task really took.
    pub fn advance(&mut self, d: std::time::Duration) {
        if let Some((now, _)) = &mut self.simulated {
            *now = now.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO)).unwrap_or(*now);
        }
        self.publish();
    }

    /// `GUMVAULT_TEST_CLOCK_OFFSET` for children, so their snapshots carry simulated times.
    pub fn child_offset(&self) -> Option<String> {
        // Rounded up to whole seconds, so a child never sees a time before the slot it runs for.
        self.simulated.map(|(now, _)| {
            let d = now.duration_since(Timestamp::now());
            format!("{}s", d.as_secs() + i64::from(d.subsec_nanos() > 0))
        })
    }
}
