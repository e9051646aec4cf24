//! The endpoint's state, kept by one background thread so that no request ever reaches storage: every
//! `[http] refresh` (default [`DEFAULT_REFRESH`]) it reads the config again, brings the catalog up to date when
//! asked to (`serve`: two listings, `index/` and `snapshots/`; the daemon's own tasks keep its catalog current,
//! so it does not, and asks for a refresh after each run instead, [`state_changed`]), computes the status (with
//! several regions: each region's health, a listing of each), and publishes it on a [`Board`]. However many
//! requests arrive, they cause no listing at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::endpoint::{Access, Published, View, host_name};
use super::status;
use crate::config::Config;
use crate::error::Result;
use crate::repo::session::Session;

/// How often the endpoint's state is refreshed when `[http] refresh` does not say.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// Set when the daemon has recorded a run: its state changed, so the next refresh should not wait.
static CHANGED: AtomicBool = AtomicBool::new(false);

/// Asks the refresher to recompute now rather than at the end of its interval. The daemon calls it after each
/// run it records, so the endpoint shows a run as soon as it ended; it costs the catalog queries of a status
/// (and, with several regions, a listing of each).
pub fn state_changed() {
    CHANGED.store(true, Ordering::Relaxed);
}

/// What the endpoint needs from the command that runs it.
pub trait Source: Sync {
    /// Opens the repository and its catalog, as the command does.
    fn open(&self) -> Result<Session>;
    /// Reads the config file again, so edits show without a restart.
    fn reload_config(&self) -> Result<Config>;
}

/// Where the refresher publishes and requests read: the latest [`Published`], swapped whole.
#[derive(Default)]
pub struct Board(Mutex<Option<Arc<Published>>>);

impl Board {
    /// The latest publication (`None` before the first).
    pub fn current(&self) -> Option<Arc<Published>> {
        self.0.lock().map(|g| g.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn publish(&self, p: Published) {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Some(Arc::new(p));
    }
}

/// How the state is computed.
pub struct Refresher<'a> {
    /// Where the config and the repository come from.
    pub source: &'a dyn Source,
    /// Bring the catalog up to date from the repository at each refresh (`serve`; not the daemon, whose tasks
    /// record what they do in the catalog it reads).
    pub sync_catalog: bool,
    /// The address the endpoint was told to listen on: its host name is always an allowed `Host`.
    pub listen: String,
    /// The time ages are judged at.
    pub now: &'a (dyn Fn() -> Timestamp + Sync),
}

impl Refresher<'_> {
    /// Computes and publishes the state once; returns the interval until the next refresh.
    pub fn publish(&self, session: &mut Session, board: &Board, last_interval: Duration) -> Duration {
        let at = Instant::now();
        let config = match self.source.reload_config() {
            Ok(c) => c,
            Err(e) => {
                // A broken config is told to the operator's log, not to callers: parser messages may quote a line.
                eprintln!("gumvault: error: status endpoint: {e}");
                let view = Err("the config file is invalid: see the log of gumvault serve/daemon".into());
                board.publish(Published { access: Access::Broken, view, at, stale_after: stale_after(last_interval) });
                return last_interval;
            }
        };
        let interval = interval_of(&config);
        let view = self.view(&config, session).map_err(|e| {
            eprintln!("gumvault: error: status endpoint: {e}");
            e.to_string()
        });
        let access = self.access(&config);
        board.publish(Published { access, view, at, stale_after: stale_after(interval) });
        interval
    }

    /// Refreshes every interval until `stop()` says so; `first` is the interval the first publication returned.
    pub fn run(&self, mut session: Session, board: &Board, stop: &(dyn Fn() -> bool + Sync), first: Duration) {
        let mut interval = first;
        loop {
            let due = Instant::now() + interval;
            while Instant::now() < due && !CHANGED.swap(false, Ordering::Relaxed) {
                if stop() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100).min(due.saturating_duration_since(Instant::now())));
            }
            interval = self.publish(&mut session, board, interval);
        }
    }

    fn view(&self, config: &Config, session: &mut Session) -> Result<View> {
        if self.sync_catalog {
            session.catalog.sync(&session.repo)?;
        }
        let st = status::of_session(config, session, false, (self.now)())?;
        Ok(View {
            status_json: serde_json::to_vec_pretty(&st).unwrap_or_default().into(),
            metrics: super::metrics::metrics(&st).into(),
            health: st.status,
        })
    }

    fn access(&self, config: &Config) -> Access {
        let Some(token) = &config.http.token else {
            let mut hosts: Vec<String> =
                config.http.allowed_hosts.iter().filter_map(|h| host_name(h.as_bytes())).collect();
            hosts.extend(host_name(self.listen.as_bytes()));
            return Access::Open { hosts };
        };
        match token.resolve() {
            Ok(t) if !t.trim().is_empty() => Access::Token(t.trim().to_string()),
            Ok(_) => {
                eprintln!("gumvault: error: status endpoint: [http] token ({}) is empty", token.describe());
                Access::Broken
            }
            Err(e) => {
                eprintln!("gumvault: error: status endpoint: [http] token: {e}");
                Access::Broken
            }
        }
    }
}

/// `[http] refresh`, at least one second.
fn interval_of(config: &Config) -> Duration {
    config.http.refresh.map_or(DEFAULT_REFRESH, |d| d.0.unsigned_abs()).max(Duration::from_secs(1))
}

/// A publication older than three intervals and half a minute means the refresher is stuck (a storage call that
/// hangs): `/healthz` then answers 503 rather than an old "healthy".
fn stale_after(interval: Duration) -> Duration {
    interval * 3 + Duration::from_secs(30)
}
