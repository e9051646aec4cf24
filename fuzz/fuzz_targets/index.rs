//! Index segments: arbitrary plaintext sealed under a fixed key, and raw bytes, must never panic.
#![no_main]
use gumvault::format::crypto::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes([7; 32]);
    let _ = gumvault::format::index::decode(&key, data);
    let _ = gumvault::format::index::decode(&key, &gumvault::format::index::seal_plain(&key, data.to_vec()));
});
