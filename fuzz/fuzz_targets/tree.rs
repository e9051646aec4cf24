//! Tree blobs (JSON after decryption) must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = gumvault::format::tree::Tree::from_bytes(data) {
        // What parses must serialize and parse back to the same tree.
        assert_eq!(gumvault::format::tree::Tree::from_bytes(&tree.to_bytes()).expect("round trip"), tree);
    }
});
