//! The `gumvault` binary: parses the command line, runs the library, maps errors to exit codes.

fn main() {
    bound_malloc_caching();
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
