//! Any bytes as an OVF descriptor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = depot_inspect::ovf::parse(bytes);
});
