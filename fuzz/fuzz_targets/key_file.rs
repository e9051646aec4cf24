//! Key files (plaintext JSON) must never panic, also when unlocked with a cheap KDF.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut kf) = gumvault::repo::KeyFile::parse("keys/fuzz", data) {
        // Keep the fuzzer fast: never run an expensive Argon2id here.
        kf.kdf_params.memory_kib = kf.kdf_params.memory_kib.min(64);
        kf.kdf_params.iterations = kf.kdf_params.iterations.min(2);
        let _ = kf.unlock("keys/fuzz", b"password");
    }
});
