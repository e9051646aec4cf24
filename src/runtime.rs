//! The process-wide tokio runtime that opendal's blocking operators and the occasional HTTP call (a webhook) run
//! on. It is multi-threaded because opendal's blocking layer needs that; it is created on first use.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The process-wide tokio runtime opendal's blocking operators run on. It must be multi-threaded.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("gumvault-io").enable_all().build()
    })
    .as_ref()
    .map_err(|e| Error::io("start the I/O runtime", "(tokio)", std::io::Error::new(e.kind(), e.to_string())))
}

/// Runs a future on the process-wide I/O runtime (for the occasional HTTP call outside storage, e.g. a
/// webhook). Must not be called from inside that runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
}

/// A pool of `threads` threads for work that mostly waits on storage (downloads, uploads), beside rayon's pool of
/// one thread per core for work that computes. `what` names the work in the error.
pub fn io_pool(threads: usize, what: &str) -> Result<rayon::ThreadPool> {
    let threads = threads.max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gumvault-io-{i}"))
        .build()
        .map_err(|e| Error::io("start the threads for", what, std::io::Error::other(e.to_string())))
}

/// [`io_pool`] when `threads` is more than rayon's one per core, else `None`: rayon's own threads will do.
pub fn io_pool_beyond_cores(threads: usize, what: &str) -> Result<Option<rayon::ThreadPool>> {
    (threads > rayon::current_num_threads()).then(|| io_pool(threads, what)).transpose()
}
