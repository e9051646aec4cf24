//! The `gumvault` binary: parses the command line, runs the library, maps errors to exit codes.

fn main() {
    bound_malloc_caching();
    private_files();
    std::process::exit(gumvault::cli::run());
}

/// Pack and chunk buffers are large and short-lived. glibc raises its mmap threshold after the first such buffer
/// is freed and then keeps later ones on the heap, where freed memory is not returned: peak memory would creep up
/// with the number of packs. A fixed threshold keeps every buffer of 1 MiB and more in its own mapping, returned
/// to the system when freed.
fn bound_malloc_caching() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Everything gumvault creates is its owner's only: repository files 0600 and directories 0700 on a local disk,
/// the catalog likewise. A umask rather than a chmod after each write, because the kernel applies it atomically
/// when a file is created — there is no moment when a key file or opendal's temporary copy of a pack is 0644 —
/// and it covers every file the libraries create for us (opendal's temporary files and intermediate directories,
/// SQLite's -wal and -shm files, leases) and every one added later, with no chmod that a file system without
/// permissions (vfat, some CIFS mounts) would refuse.
///
/// What else it affects, and why that is right: restore gives every file and directory of the snapshot its
/// recorded mode explicitly (fchmod), so restored trees keep their modes; directories a restore creates that the
/// snapshot does not describe (a missing target and its parents) are 0700 until the owner opens them up. Programs
/// gumvault starts get the umask it was started with back (src/children.rs), so an alert script or pg_dump
/// creates files as it would anywhere else.
fn private_files() {
    // SAFETY: umask only changes this process's file creation mask; it is called before any other thread exists.
    let started_with = unsafe { libc::umask(0o077) };
    gumvault::children::remember_umask(started_with);
}
