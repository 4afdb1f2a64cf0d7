//! What a file is, read from its first bytes (never from its name), and
//! whether it is safe to hand to a hypervisor.

use app::error::CoreError;
use app::model::DiskFormat;

/// What the leading bytes of a file say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub format: DiskFormat,
    /// The size of the disk the guest sees, for sparse formats.
    pub virtual_size: Option<i64>,
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// A size read from a header, in bytes, as the catalog stores it: a size no
/// disk can have (past `i64::MAX`, or overflowing when scaled) is refused.
fn header_size(value: Option<u64>, unit: u64) -> Result<Option<i64>, CoreError> {
    match value {
        None => Ok(None),
        Some(value) => value
            .checked_mul(unit)
            .and_then(|bytes| i64::try_from(bytes).ok())
            .map(Some)
            .ok_or_else(|| unsafe_file("the header claims an impossible disk size")),
    }
}

fn unsafe_file(reason: &str) -> CoreError {
    CoreError::invalid(format!("refused: {reason}"))
}

/// Reads the format; refuses disks that would make a hypervisor open other files.
pub fn inspect(head: &[u8]) -> Result<Inspection, CoreError> {
    if head.starts_with(b"QFI\xfb") {
        // qcow2 header: backing file offset at 8, size at 24, v3 incompatible features at 72.
        if be_u64(head, 8).unwrap_or(0) != 0 {
            return Err(unsafe_file("a qcow2 image with a backing file"));
        }
        let version = head
            .get(4..8)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        const EXTERNAL_DATA_FILE: u64 = 1 << 2;
        if version >= Some(3) && be_u64(head, 72).unwrap_or(0) & EXTERNAL_DATA_FILE != 0 {
            return Err(unsafe_file("a qcow2 image with an external data file"));
        }
        return Ok(Inspection {
            format: DiskFormat::Qcow2,
            virtual_size: header_size(be_u64(head, 24), 1)?,
        });
    }
    if head.starts_with(b"KDMV") {
        // Sparse VMDK extent: capacity in 512-byte sectors at 12.
        return Ok(Inspection {
            format: DiskFormat::Vmdk,
            virtual_size: header_size(le_u64(head, 12), 512)?,
        });
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        return Err(unsafe_file(
            "a VMDK descriptor whose extents are separate files",
        ));
    }
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        return Ok(Inspection {
            format: DiskFormat::Iso,
            virtual_size: None,
        });
    }
    if head.get(257..262) == Some(b"ustar") {
        return Ok(Inspection {
            format: DiskFormat::Ova,
            virtual_size: None,
        });
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    if text.trim_start().starts_with("<?xml") && text.contains("Envelope") {
        return Ok(Inspection {
            format: DiskFormat::Ovf,
            virtual_size: None,
        });
    }
    Ok(Inspection {
        format: DiskFormat::Raw,
        virtual_size: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2(version: u32, backing_offset: u64, features: u64, size: u64) -> Vec<u8> {
        let mut head = vec![0u8; 104];
        head[..4].copy_from_slice(b"QFI\xfb");
        head[4..8].copy_from_slice(&version.to_be_bytes());
        head[8..16].copy_from_slice(&backing_offset.to_be_bytes());
        head[24..32].copy_from_slice(&size.to_be_bytes());
        head[72..80].copy_from_slice(&features.to_be_bytes());
        head
    }

    #[test]
    fn qcow2_reads_its_virtual_size() {
        let inspection = inspect(&qcow2(3, 0, 0, 1 << 30)).unwrap();
        assert_eq!(
            inspection,
            Inspection {
                format: DiskFormat::Qcow2,
                virtual_size: Some(1 << 30)
            }
        );
    }

    #[test]
    fn qcow2_pointing_at_other_files_is_refused() {
        let backing = inspect(&qcow2(3, 512, 0, 1 << 30)).unwrap_err();
        assert!(backing.to_string().contains("backing file"));
        let external = inspect(&qcow2(3, 0, 4, 1 << 30)).unwrap_err();
        assert!(external.to_string().contains("external data file"));
    }

    #[test]
    fn iso_and_ova_are_told_by_magic_not_name() {
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(inspect(&iso).unwrap().format, DiskFormat::Iso);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(inspect(&tar).unwrap().format, DiskFormat::Ova);
        assert_eq!(inspect(b"just some bytes").unwrap().format, DiskFormat::Raw);
    }

    #[test]
    fn vmdk_sparse_is_read_and_descriptors_refused() {
        let mut sparse = vec![0u8; 64];
        sparse[..4].copy_from_slice(b"KDMV");
        sparse[12..20].copy_from_slice(&2048u64.to_le_bytes());
        assert_eq!(inspect(&sparse).unwrap().virtual_size, Some(1024 * 1024));
        assert!(inspect(b"# Disk DescriptorFile\nRW 100 FLAT \"other.vmdk\" 0").is_err());
    }

    #[test]
    fn sizes_that_overflow_are_refused_not_wrapped() {
        let mut sparse = vec![0u8; 64];
        sparse[..4].copy_from_slice(b"KDMV");
        sparse[12..20].copy_from_slice(&(u64::MAX / 256).to_le_bytes());
        let refused = inspect(&sparse).unwrap_err();
        assert!(refused.to_string().contains("impossible disk size"));
        assert!(inspect(&qcow2(3, 0, 0, u64::MAX)).is_err());
        assert_eq!(
            inspect(&qcow2(3, 0, 0, i64::MAX as u64))
                .unwrap()
                .virtual_size,
            Some(i64::MAX)
        );
    }
}
