//! Snapshot manifests (JSON after decryption) must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gumvault::format::snapshot::Snapshot::from_bytes(data);
});
