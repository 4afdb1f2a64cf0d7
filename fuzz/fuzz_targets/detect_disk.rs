//! Any head, tail and claimed size through the disk formats' parsers, with
//! an archive's sibling names said to be present or not.
#![no_main]

use depot_inspect::disk::{detect, HEAD_LEN, TAIL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&switches, rest)) = bytes.split_first() else {
        return;
    };
    let head = &rest[..rest.len().min(HEAD_LEN)];
    let tail = &rest[rest.len().saturating_sub(TAIL_LEN)..];
    // The size is the file's, or a claimed one far past it.
    let size = if switches & 1 == 0 {
        rest.len() as u64
    } else {
        u64::from_le_bytes(rest.get(..8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]))
    };
    let beside = |_: &str| switches & 2 == 2;
    let _ = detect(head, tail, size, &beside);
});
