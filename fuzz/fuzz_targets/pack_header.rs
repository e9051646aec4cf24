//! Pack headers and whole packs: arbitrary bytes, raw and sealed under a fixed key, must never panic.
#![no_main]
use gumvault::format::crypto::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes([7; 32]);
    let _ = gumvault::format::pack::parse_pack(&key, data);
    let sealed = gumvault::format::pack::seal_header(&key, data.to_vec());
    let _ = gumvault::format::pack::decode_header(&key, &sealed, data.len() as u64);
    let _ = gumvault::format::pack::decode_header(&key, &sealed, 0);
});
