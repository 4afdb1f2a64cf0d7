//! Any bytes through the whole inspector, as an upload streams them: it
//! answers (a format or a refusal) and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = depot_inspect::inspect_bytes(bytes);
});
