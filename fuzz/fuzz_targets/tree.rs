//! Tree blobs (JSON after decryption) and content lists (raw ids) must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = gumvault::format::tree::Tree::from_bytes(data) {
        // What parses must serialize and parse back to the same tree.
        assert_eq!(gumvault::format::tree::Tree::from_bytes(&tree.to_bytes()).expect("round trip"), tree);
    }
    let expected = data.first().map_or(0, |b| u32::from(*b));
    if let Ok(ids) = gumvault::format::content_list::decode(data, expected) {
        assert_eq!(gumvault::format::content_list::encode(&ids), data);
    }
});
