//! Raw disks: what no format claims, with its partition table noted.

use super::{info, DiskFormat, DiskInfo};

/// A file no format claims: raw, with its partition table noted. A FAT boot
/// sector also ends in 0x55AA, so an MBR must also have sane entries.
pub(super) fn raw(head: &[u8]) -> DiskInfo {
    let gpt = [512, 4096]
        .into_iter()
        .any(|at| head.get(at..at + 8) == Some(b"EFI PART".as_slice()));
    let detail = if gpt {
        "raw (GPT)"
    } else if mbr(head) {
        "raw (MBR)"
    } else {
        "raw"
    };
    info(DiskFormat::Raw, None, detail)
}

fn mbr(head: &[u8]) -> bool {
    let Some(entries) = head.get(446..510) else {
        return false;
    };
    head.get(510..512) == Some([0x55, 0xaa].as_slice())
        && entries
            .chunks_exact(16)
            .all(|entry| matches!(entry.first(), Some(0x00 | 0x80)))
        && entries
            .chunks_exact(16)
            .any(|entry| entry.get(4).is_some_and(|kind| *kind != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::test_support::*;

    #[test]
    fn raw_notes_its_partition_table() {
        assert_eq!(
            inspect(b"").unwrap(),
            DiskInfo {
                format: DiskFormat::Raw,
                virtual_size: None,
                detail: "raw".into(),
                volume_label: None,
            }
        );
        let mut mbr = zeros(4096);
        put(&mut mbr, 446, &[0x80, 0x20, 0x21, 0x00, 0x83]);
        put(&mut mbr, 510, &[0x55, 0xaa]);
        assert_eq!(inspect(&mbr).unwrap().detail, "raw (MBR)");
        let mut gpt = mbr.clone();
        put(&mut gpt, 446 + 4, &[0xee]);
        put(&mut gpt, 512, b"EFI PART");
        assert_eq!(inspect(&gpt).unwrap().detail, "raw (GPT)");
        let mut gpt_4k = zeros(16384);
        put(&mut gpt_4k, 4096, b"EFI PART");
        assert_eq!(inspect(&gpt_4k).unwrap().detail, "raw (GPT)");
        // A FAT boot sector ends in 0x55AA too, but has no partition entries.
        let mut fat = zeros(4096);
        put(&mut fat, 0, b"\xeb\x3c\x90mkfs.fat");
        put(&mut fat, 446, b"\x0e\x1f\xbe\x5b\x7c\xac\x22\xc0");
        put(&mut fat, 510, &[0x55, 0xaa]);
        assert_eq!(inspect(&fat).unwrap().detail, "raw");
        assert_eq!(inspect(b"just some bytes").unwrap().format, DiskFormat::Raw);
    }
}
