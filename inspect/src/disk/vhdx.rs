//! VHDX: its region table and metadata region.

use super::{array, disk_bytes, info, le_u16, le_u32, le_u64, DiskFormat, DiskInfo, File};

/// Builds the on-disk (mixed-endian) bytes of a GUID written as text.
const fn guid(text: &str) -> [u8; 16] {
    let text = text.as_bytes();
    let mut raw = [0u8; 16];
    let mut nibbles = 0;
    let mut index = 0;
    while index < text.len() {
        let byte = text[index];
        index += 1;
        let value = match byte {
            b'-' => continue,
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => panic!("not a GUID"),
        };
        raw[nibbles / 2] = (raw[nibbles / 2] << 4) | value;
        nibbles += 1;
    }
    assert!(nibbles == 32, "not a GUID");
    // The first three fields are stored little-endian, the rest as written.
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

const VHDX_BAT_REGION: [u8; 16] = guid("2DC27766-F623-4200-9D64-115E9BFD4A08");
const VHDX_METADATA_REGION: [u8; 16] = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E");
const VHDX_FILE_PARAMETERS: [u8; 16] = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
const VHDX_VIRTUAL_DISK_SIZE: [u8; 16] = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
const VHDX_PAGE_83: [u8; 16] = guid("BECA12AB-B2E6-4523-93EF-C309E000C746");
const VHDX_LOGICAL_SECTOR_SIZE: [u8; 16] = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
const VHDX_PHYSICAL_SECTOR_SIZE: [u8; 16] = guid("CDA348C7-445D-4471-9CC9-E9885251C556");
const VHDX_PARENT_LOCATOR: [u8; 16] = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
/// The two headers, each 4 KiB.
const VHDX_HEADERS: [usize; 2] = [64 * 1024, 128 * 1024];
const VHDX_HEADER_LEN: usize = 4096;
/// The region table and its copy, each 64 KiB.
const VHDX_REGION_TABLES: [usize; 2] = [192 * 1024, 256 * 1024];
const VHDX_REGION_TABLE_LEN: usize = 64 * 1024;
/// The most entries a region or metadata table may have.
const VHDX_MAX_ENTRIES: usize = 2047;
/// File Parameters flag: the disk is a differencing disk.
const VHDX_HAS_PARENT: u32 = 1 << 1;
/// Metadata entry flag: a reader must understand the item to open the disk.
const VHDX_IS_REQUIRED: u32 = 1 << 2;
const VHDX_DIFFERENCING: &str = "a differencing VHDX (it names a parent disk)";
const VHDX_DAMAGED_METADATA: &str = "a VHDX image whose metadata table is damaged";

/// A VHDX as far as the bytes at hand show it. Its metadata region lies at
/// 1 MiB or later, past the head a caller hands over: the caller then reads
/// it and asks [`super::vhdx_metadata`], or refuses the disk.
pub(super) fn vhdx(file: &File) -> Result<DiskInfo, String> {
    let (offset, length) = vhdx_metadata_region(file.head)?;
    check_log(file.head)?;
    if file.at(offset, 1).is_none() {
        return Ok(info(DiskFormat::Vhdx, None, "vhdx"));
    }
    let virtual_size = vhdx_metadata_in(file, offset, length)?;
    Ok(info(DiskFormat::Vhdx, virtual_size, "vhdx"))
}

/// Refuses a VHDX whose current header (of the two, the sound one with the
/// higher sequence number, as readers choose) names a log to replay:
/// replaying it, as Hyper-V does on opening the disk and qemu when it opens
/// it to write, can rewrite the metadata checked here, a parent among it.
fn check_log(head: &[u8]) -> Result<(), String> {
    let current = VHDX_HEADERS
        .iter()
        .filter_map(|&at| {
            let header = head.get(at..at.checked_add(VHDX_HEADER_LEN)?)?;
            let sound = header.starts_with(b"head")
                && le_u32(header, 4) == Some(crc32c_without_checksum(header));
            sound.then_some(header)
        })
        .max_by_key(|header| le_u64(header, 8).unwrap_or_default())
        .ok_or("a VHDX image whose headers are missing or damaged")?;
    let log_guid = current.get(48..64).unwrap_or_default();
    if log_guid.iter().any(|&byte| byte != 0) {
        return Err(
            "a VHDX image with a log still to replay, which could change its metadata \
                    (and give it a parent disk): open and close it in Hyper-V, or convert it \
                    with qemu-img, first"
                .into(),
        );
    }
    Ok(())
}

/// The metadata region's (offset, length), from the first region table
/// whose signature and CRC-32C hold (as the specification has readers do).
pub(super) fn vhdx_metadata_region(head: &[u8]) -> Result<(u64, u64), String> {
    let table = VHDX_REGION_TABLES
        .iter()
        .find_map(|&at| valid_region_table(head, at))
        .ok_or("a VHDX image whose region tables are missing or damaged")?;
    let count = le_u32(table, 8)
        .and_then(|count| usize::try_from(count).ok())
        .unwrap_or_default();
    let mut metadata = None;
    let entries = table.get(16..).unwrap_or_default();
    for entry in entries.chunks_exact(32).take(count) {
        let id: Option<[u8; 16]> = array(entry, 0);
        let required = le_u32(entry, 28).unwrap_or_default() & 1 != 0;
        match id {
            Some(VHDX_METADATA_REGION) => {
                if metadata.is_some() {
                    return Err("a VHDX image with two metadata regions".into());
                }
                let offset = le_u64(entry, 16).unwrap_or_default();
                let length = u64::from(le_u32(entry, 24).unwrap_or_default());
                metadata = Some((offset, length));
            }
            Some(VHDX_BAT_REGION) => {}
            _ if required => {
                return Err("a VHDX image with a required region Depot does not know".into())
            }
            _ => {}
        }
    }
    metadata.ok_or_else(|| "a VHDX image without a metadata region".into())
}

fn valid_region_table(head: &[u8], at: usize) -> Option<&[u8]> {
    let table = head.get(at..at.checked_add(VHDX_REGION_TABLE_LEN)?)?;
    let count = usize::try_from(le_u32(table, 8)?).ok()?;
    let sound = table.starts_with(b"regi")
        && count <= VHDX_MAX_ENTRIES
        && le_u32(table, 4) == Some(crc32c_without_checksum(table));
    sound.then_some(table)
}

/// Reads the metadata table at `base` and the items it points to: a parent
/// locator or the has-parent flag refuses the disk, and so does a table or
/// a file parameters item cut short or missing (it could hide either); the
/// virtual disk size is returned when reachable.
pub(super) fn vhdx_metadata_in(file: &File, base: u64, length: u64) -> Result<Option<u64>, String> {
    let Some(header) = file.at(base, 32) else {
        return Err(VHDX_DAMAGED_METADATA.into());
    };
    if !header.starts_with(b"metadata") {
        return Err(VHDX_DAMAGED_METADATA.into());
    }
    let count = usize::from(le_u16(header, 10).unwrap_or_default());
    if count > VHDX_MAX_ENTRIES {
        return Err(VHDX_DAMAGED_METADATA.into());
    }
    let entries_at = base.checked_add(32).ok_or(VHDX_DAMAGED_METADATA)?;
    let Some(entries) = count
        .checked_mul(32)
        .and_then(|len| file.at(entries_at, len))
    else {
        return Err(VHDX_DAMAGED_METADATA.into());
    };
    let mut virtual_size = None;
    let mut parameters_read = false;
    for entry in entries.chunks_exact(32) {
        let id: Option<[u8; 16]> = array(entry, 0);
        let item_offset = u64::from(le_u32(entry, 16).unwrap_or_default());
        let item_len = le_u32(entry, 20).unwrap_or_default();
        let flags = le_u32(entry, 24).unwrap_or_default();
        if item_offset
            .checked_add(u64::from(item_len))
            .is_none_or(|end| end > length)
        {
            return Err(VHDX_DAMAGED_METADATA.into());
        }
        let item = |len: usize| {
            base.checked_add(item_offset)
                .and_then(|at| file.at(at, len))
        };
        match id {
            Some(VHDX_PARENT_LOCATOR) => return Err(VHDX_DIFFERENCING.into()),
            Some(VHDX_FILE_PARAMETERS) => {
                let flags = item(8)
                    .and_then(|params| le_u32(params, 4))
                    .ok_or(VHDX_DAMAGED_METADATA)?;
                if flags & VHDX_HAS_PARENT != 0 {
                    return Err(VHDX_DIFFERENCING.into());
                }
                parameters_read = true;
            }
            Some(VHDX_VIRTUAL_DISK_SIZE) => {
                if item_len != 8 {
                    return Err(VHDX_DAMAGED_METADATA.into());
                }
                if let Some(size) = item(8).and_then(|bytes| le_u64(bytes, 0)) {
                    virtual_size = Some(disk_bytes(size)?);
                }
            }
            Some(VHDX_PAGE_83 | VHDX_LOGICAL_SECTOR_SIZE | VHDX_PHYSICAL_SECTOR_SIZE) => {}
            _ if flags & VHDX_IS_REQUIRED != 0 => {
                return Err("a VHDX image with required metadata Depot does not know".into())
            }
            _ => {}
        }
    }
    if !parameters_read {
        return Err(VHDX_DAMAGED_METADATA.into());
    }
    Ok(virtual_size)
}

/// CRC-32C (Castagnoli, reflected), the checksum VHDX uses.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    let mut value: u32 = 0;
    while index < 256 {
        let mut crc = value;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
        value += 1;
    }
    table
}

fn crc32c_update(crc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(crc, |crc, &byte| {
        let index = usize::from(crc.to_le_bytes()[0] ^ byte);
        (crc >> 8) ^ CRC32C_TABLE.get(index).copied().unwrap_or_default()
    })
}

/// The CRC-32C of a VHDX structure whose checksum field (bytes 4..8) counts
/// as zero.
fn crc32c_without_checksum(bytes: &[u8]) -> u32 {
    let crc = crc32c_update(!0, bytes.get(..4).unwrap_or_default());
    let crc = crc32c_update(crc, &[0; 4]);
    !crc32c_update(crc, bytes.get(8..).unwrap_or_default())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::test_support::*;
    use crate::disk::vhd::tests::dynamic_vhd;
    use crate::disk::{
        detect, len64, vhdx_metadata, vhdx_metadata_span, HEAD_LEN, IMPOSSIBLE_SIZE,
    };

    /// The region table of `qemu-img create -f vhdx x.vhdx 100M` (its first
    /// 0x50 bytes; the rest of the 64 KiB is zero), stored CRC 0x2c6fce83.
    const VHDX_REGION_TABLE: &str =
        "7265676983ce6f2c02000000000000006677c22d23f600429d64115e9bfd4a\
        080000200000000000000010000000000006a27c8b90479a4bb8fe575f050f886e0000300000000000000010\
        0000000000";

    pub(in crate::disk) struct Item {
        id: [u8; 16],
        data: Vec<u8>,
        flags: u32,
    }

    pub(in crate::disk) fn standard_items(size: u64) -> Vec<Item> {
        vec![
            Item {
                id: VHDX_FILE_PARAMETERS,
                data: [0x0080_0000u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
                flags: 4,
            },
            Item {
                id: VHDX_VIRTUAL_DISK_SIZE,
                data: size.to_le_bytes().to_vec(),
                flags: 6,
            },
            Item {
                id: VHDX_LOGICAL_SECTOR_SIZE,
                data: 512u32.to_le_bytes().to_vec(),
                flags: 6,
            },
        ]
    }

    /// A header of sequence number `sequence` naming log `log`.
    fn header(sequence: u64, log: [u8; 16]) -> Vec<u8> {
        let mut header = zeros(VHDX_HEADER_LEN);
        put(&mut header, 0, b"head");
        put(&mut header, 8, &sequence.to_le_bytes());
        put(&mut header, 48, &log);
        put(&mut header, 66, &1u16.to_le_bytes());
        let crc = crc32c_without_checksum(&header);
        put(&mut header, 4, &crc.to_le_bytes());
        header
    }

    /// A log left to replay could rewrite the metadata: refused, when the
    /// current header (the higher sequence number) names one.
    #[test]
    fn a_vhdx_with_a_log_to_replay_is_refused() {
        let file = || vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1 << 30));
        let mut logged = file();
        put(&mut logged, VHDX_HEADERS[1], &header(2, [9; 16]));
        assert!(whole(&logged).unwrap_err().contains("log still to replay"));
        let mut replayed = file();
        put(&mut replayed, VHDX_HEADERS[0], &header(3, [0; 16]));
        put(&mut replayed, VHDX_HEADERS[1], &header(2, [9; 16]));
        assert_eq!(whole(&replayed).unwrap().virtual_size, Some(1 << 30));
        let mut damaged = file();
        damaged[VHDX_HEADERS[0] + 100] = 1;
        assert!(whole(&damaged)
            .unwrap_err()
            .contains("headers are missing or damaged"));
    }

    /// A VHDX of `size` bytes with its metadata region at `metadata_at`,
    /// differencing or not, for the callers' tests.
    pub(crate) fn vhdx_image(metadata_at: usize, len: usize, size: u64, parent: bool) -> Vec<u8> {
        let mut items = standard_items(size);
        if parent {
            items[0].data = [0x0080_0000u32.to_le_bytes(), 2u32.to_le_bytes()].concat();
        }
        vhdx_file(metadata_at, len, &items)
    }

    /// A VHDX laid out as qemu-img lays it out, the metadata region at
    /// `metadata_at` (1 MiB aligned, as the format requires).
    pub(in crate::disk) fn vhdx_file(metadata_at: usize, len: usize, items: &[Item]) -> Vec<u8> {
        let mut file = zeros(len);
        put(&mut file, 0, b"vhdxfile");
        let mut table = zeros(VHDX_REGION_TABLE_LEN);
        put(&mut table, 0, b"regi");
        put(&mut table, 8, &2u32.to_le_bytes());
        put(&mut table, 16, &VHDX_BAT_REGION);
        put(&mut table, 32, &(2u64 << 20).to_le_bytes());
        put(&mut table, 40, &(1u32 << 20).to_le_bytes());
        put(&mut table, 44, &1u32.to_le_bytes());
        put(&mut table, 48, &VHDX_METADATA_REGION);
        put(&mut table, 64, &len64(metadata_at).to_le_bytes());
        put(&mut table, 72, &(1u32 << 20).to_le_bytes());
        put(&mut table, 76, &1u32.to_le_bytes());
        let crc = crc32c_without_checksum(&table);
        put(&mut table, 4, &crc.to_le_bytes());
        for at in VHDX_REGION_TABLES {
            put(&mut file, at, &table);
        }
        put(&mut file, VHDX_HEADERS[0], &header(1, [0; 16]));
        put(&mut file, metadata_at, b"metadata");
        let count = u16::try_from(items.len()).unwrap();
        put(&mut file, metadata_at + 10, &count.to_le_bytes());
        let mut data_at = 0x10000u32;
        for (index, item) in items.iter().enumerate() {
            let entry = metadata_at + 32 + 32 * index;
            put(&mut file, entry, &item.id);
            put(&mut file, entry + 16, &data_at.to_le_bytes());
            let item_len = u32::try_from(item.data.len()).unwrap();
            put(&mut file, entry + 20, &item_len.to_le_bytes());
            put(&mut file, entry + 24, &item.flags.to_le_bytes());
            let at = metadata_at + usize::try_from(data_at).unwrap();
            put(&mut file, at, &item.data);
            data_at += item_len;
        }
        file
    }

    pub(in crate::disk) fn whole(file: &[u8]) -> Result<DiskInfo, String> {
        detect(file, &[], len64(file.len()), &nothing_beside)
    }

    #[test]
    fn vhdx_guids_and_checksum_match_the_real_thing() {
        assert_eq!(
            VHDX_METADATA_REGION,
            [
                0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f,
                0x88, 0x6e
            ]
        );
        assert_eq!(
            VHDX_VIRTUAL_DISK_SIZE,
            [
                0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b,
                0xf4, 0xb8
            ]
        );
        assert_eq!(crc32c_update(!0, b"123456789") ^ !0, 0xe306_9283);
        let mut table = zeros(VHDX_REGION_TABLE_LEN);
        put(&mut table, 0, &hex::decode(VHDX_REGION_TABLE).unwrap());
        assert_eq!(crc32c_without_checksum(&table), 0x2c6f_ce83);
        assert_eq!(le_u32(&table, 4), Some(0x2c6f_ce83));
    }

    #[test]
    fn vhdx_size_is_read_when_the_metadata_is_at_hand() {
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(100 << 20));
        let info = whole(&file).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Vhdx,
                virtual_size: Some(100 << 20),
                detail: "vhdx".into(),
                volume_label: None,
            }
        );
        // As the caller hands it: 1 MiB of head, so the metadata is out of reach.
        let far = vhdx_file(3 << 20, 4 << 20, &standard_items(100 << 20));
        let info = inspect(&far).unwrap();
        assert_eq!(info.virtual_size, None);
        assert_eq!(info.detail, "vhdx");
        // … and the caller can fetch it and ask.
        let (offset, length) = vhdx_metadata_span(&far[..HEAD_LEN]).unwrap();
        assert_eq!((offset, length), (3 << 20, 1 << 20));
        let region = &far[3 << 20..(3 << 20) + 0x20000];
        assert_eq!(vhdx_metadata(region), Ok(Some(100 << 20)));
        assert_eq!(vhdx_metadata_span(&dynamic_vhd()), None);
    }

    /// A file's inspection reads the metadata region on the way; one too
    /// far in to be read is refused, since it could name a parent.
    #[test]
    fn a_vhdx_is_checked_for_a_parent_on_the_way_or_refused() {
        let near = vhdx_image(3 << 20, 4 << 20, 100 << 20, false);
        let inspection = crate::inspect_bytes(&near).unwrap();
        assert_eq!(inspection.virtual_size, Some(100 << 20));
        let differencing = vhdx_image(3 << 20, 4 << 20, 100 << 20, true);
        let refusal = crate::inspect_bytes(&differencing).unwrap_err();
        assert!(refusal.contains("differencing VHDX"), "{refusal}");
        let far = vhdx_image(70 << 20, (70 << 20) + 0x20000, 100 << 20, false);
        let refusal = crate::inspect_bytes(&far).unwrap_err();
        assert!(refusal.contains("past its first 65 MiB"), "{refusal}");
        // Cut off before its metadata region: nothing to show it has no parent.
        let cut = &near[..(3 << 20) + 16];
        let refusal = crate::inspect_bytes(cut).unwrap_err();
        assert!(refusal.contains("metadata table is damaged"), "{refusal}");
    }

    /// What could name a parent and cannot be read is refused, not passed.
    #[test]
    fn vhdx_metadata_cut_short_or_without_file_parameters_is_refused() {
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(100 << 20));
        let region = &file[1 << 20..];
        assert_eq!(vhdx_metadata(region), Ok(Some(100 << 20)));
        for cut in [0, 16, 32 + 16, 0x10000 + 4] {
            let refusal = vhdx_metadata(&region[..cut]).unwrap_err();
            assert!(
                refusal.contains("metadata table is damaged"),
                "{cut}: {refusal}"
            );
        }
        let without: Vec<Item> = standard_items(100 << 20)
            .into_iter()
            .filter(|item| item.id != VHDX_FILE_PARAMETERS)
            .collect();
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &without);
        assert!(vhdx_metadata(&file[1 << 20..])
            .unwrap_err()
            .contains("metadata table is damaged"));
    }

    #[test]
    fn vhdx_differencing_and_damage_are_refused() {
        let mut parent = standard_items(100 << 20);
        parent.push(Item {
            id: VHDX_PARENT_LOCATOR,
            data: zeros(64),
            flags: 4,
        });
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &parent);
        assert!(whole(&file).unwrap_err().contains("differencing VHDX"));
        let region = &file[1 << 20..];
        assert!(vhdx_metadata(region)
            .unwrap_err()
            .contains("differencing VHDX"));

        let mut has_parent = standard_items(100 << 20);
        has_parent[0].data = [0x0080_0000u32.to_le_bytes(), 2u32.to_le_bytes()].concat();
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &has_parent);
        assert!(whole(&file).unwrap_err().contains("differencing VHDX"));

        let mut unknown = standard_items(100 << 20);
        unknown.push(Item {
            id: [7; 16],
            data: zeros(8),
            flags: 4,
        });
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &unknown);
        assert!(whole(&file).unwrap_err().contains("required metadata"));

        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(u64::MAX));
        assert_eq!(whole(&file), Err(IMPOSSIBLE_SIZE.to_owned()));

        let mut bad_crc = vhdx_file(3 << 20, 4 << 20, &standard_items(1 << 30));
        for at in VHDX_REGION_TABLES {
            bad_crc[at + 100] = 1;
        }
        refused(&bad_crc, "region tables are missing or damaged");
        // One damaged copy is fine: the other is read.
        let mut one_bad = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1 << 30));
        one_bad[VHDX_REGION_TABLES[0] + 100] = 1;
        assert_eq!(whole(&one_bad).unwrap().virtual_size, Some(1 << 30));

        let mut bad_signature = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(&mut bad_signature, 1 << 20, b"metadatX");
        assert!(whole(&bad_signature)
            .unwrap_err()
            .contains("metadata table is damaged"));
        let mut many = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(&mut many, (1 << 20) + 10, &u16::MAX.to_le_bytes());
        assert!(whole(&many)
            .unwrap_err()
            .contains("metadata table is damaged"));
        let mut outside = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(
            &mut outside,
            (1 << 20) + 32 + 32 + 16,
            &u32::MAX.to_le_bytes(),
        );
        assert!(whole(&outside)
            .unwrap_err()
            .contains("metadata table is damaged"));
        refused(b"vhdxfile", "region tables are missing");
    }
}
