//! OVAs as exporters write them, and every crafted one refused: names other
//! readers spell otherwise, disks passed off as certificates, extension
//! headers that would fill memory, PAX records read differently, bytes after
//! the end, an archive that is a disk too, VHDX disks inside.

use std::cell::Cell;
use std::io::Read;

use tar::EntryType;

use super::*;

/// A header block for `name` (written as given, not normalised), `kind`
/// and `size`.
fn block(name: &str, kind: EntryType, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    header.as_bytes().to_vec()
}

/// An entry: its header, its bytes, padding to the next block.
fn entry(name: &str, kind: EntryType, data: &[u8]) -> Vec<u8> {
    let mut bytes = block(name, kind, data.len() as u64);
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

/// PAX records as tar writes them: `<length> <key>=<value>\n`.
fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (key, value) in records {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while format!("{length}{body}").len() != length {
            length += 1;
        }
        bytes.extend_from_slice(format!("{length}{body}").as_bytes());
    }
    bytes
}

/// A descriptor naming `hrefs`.
fn descriptor(hrefs: &[&str]) -> Vec<u8> {
    let files: String = hrefs
        .iter()
        .enumerate()
        .map(|(n, href)| format!("<File ovf:href=\"{href}\" ovf:id=\"file{n}\"/>"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?><Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" \
         xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"><References>{files}</References></Envelope>"
    )
    .into_bytes()
}

/// An archive of plain entries, closed as tar closes it.
fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut bytes: Vec<u8> = entries
        .iter()
        .flat_map(|(name, data)| entry(name, EntryType::Regular, data))
        .collect();
    bytes.extend_from_slice(&[0; 1024]);
    bytes
}

fn refusal(bytes: &[u8]) -> String {
    match crate::inspect_bytes(bytes) {
        Ok(inspection) => panic!("accepted: {inspection:?}"),
        Err(reason) => reason,
    }
}

fn accepted(bytes: &[u8]) {
    if let Err(reason) = crate::inspect_bytes(bytes) {
        panic!("refused: {reason}");
    }
}

/// An archive's start: a descriptor naming a disk of a 154-byte name, and
/// the GNU long-name entry for the disk that follows.
fn descriptor_naming_a_long_name() -> Vec<u8> {
    let long = format!("{}.img", "d".repeat(150));
    let mut bytes = entry("appliance.ovf", EntryType::Regular, &descriptor(&[&long]));
    bytes.extend(entry(
        "././@LongLink",
        EntryType::GNULongName,
        long.as_bytes(),
    ));
    bytes
}

/// Counts the bytes read through it.
struct Counting<'a, R> {
    inner: R,
    read: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read.set(self.read.get() + read as u64);
        Ok(read)
    }
}

/// The tar crate reads a `+` before a checksum's digits; GNU tar and
/// libarchive skip such a header and read the entry's first block as the
/// next header: there, a `disk.img` other than the one inspected.
#[test]
fn a_header_other_readers_skip_is_refused() {
    let mut hidden = entry("disk.img", EntryType::Regular, &[2; 512]);
    // An old (V7) header: no magic, so no archive inside an archive either.
    hidden[257..265].fill(0);
    hidden[148..156].fill(b' ');
    let sum: u64 = hidden[..512].iter().map(|&byte| u64::from(byte)).sum();
    hidden[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut outer = entry("disk.img", EntryType::Regular, &hidden);
    outer[148..156].fill(b' ');
    let sum: u64 = outer[..512].iter().map(|&byte| u64::from(byte)).sum();
    outer[148..156].copy_from_slice(format!("+{sum:06o}\0").as_bytes());
    let mut ova = entry(
        "appliance.ovf",
        EntryType::Regular,
        &descriptor(&["disk.img"]),
    );
    ova.extend(outer);
    ova.extend_from_slice(&[0; 1024]);
    let reason = refusal(&ova);
    assert!(reason.contains("read differently"), "{reason}");
}

/// Every name is kept until the archive ends: a thousand names of a MiB
/// each held gigabytes.
#[test]
fn a_long_entry_name_is_refused() {
    let mut ova = entry(
        "appliance.ovf",
        EntryType::Regular,
        &descriptor(&["disk.img"]),
    );
    let long = "n".repeat(2000);
    ova.extend(entry(
        "././@LongLink",
        EntryType::GNULongName,
        long.as_bytes(),
    ));
    ova.extend(entry("n", EntryType::Regular, &[1; 512]));
    ova.extend(entry("disk.img", EntryType::Regular, &[1; 512]));
    ova.extend_from_slice(&[0; 1024]);
    let reason = refusal(&ova);
    assert!(reason.contains("longer than 1024 bytes"), "{reason}");
}

/// The guest's size is its disks': each disk of the `DiskSection` by its
/// own file where that tells, not by what the descriptor claims; a readme
/// beside it (a raw file of no known size) made the claim stand before.
#[test]
fn the_size_is_the_disks_own_not_the_descriptors_claim() {
    let descriptor = "<?xml version=\"1.0\"?><Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" \
         xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"><References>\
         <File ovf:href=\"disk1.qcow2\" ovf:id=\"file1\"/><File ovf:href=\"readme.txt\" ovf:id=\"file2\"/>\
         </References><DiskSection><Info>disks</Info><Disk ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" \
         ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\"/><Disk ovf:diskId=\"vmdisk2\" \
         ovf:capacity=\"3\" ovf:capacityAllocationUnits=\"byte * 2^20\"/></DiskSection></Envelope>";
    let qcow2 = crate::disk::qcow2_file(crate::disk::QCOW2_V3);
    let ova = archive(&[
        ("appliance.ovf", descriptor.as_bytes()),
        ("disk1.qcow2", &qcow2),
        ("readme.txt", b"read me"),
    ]);
    let inspection = crate::inspect_bytes(&ova).unwrap();
    // The qcow2 file's 1 GiB, and the empty disk's 3 MiB (no file tells).
    assert_eq!(inspection.virtual_size, Some((1 << 30) + (3 << 20)));
}

#[test]
fn a_plain_ova_is_read_with_its_disks() {
    let disk = vec![7u8; 5000];
    let ova = archive(&[
        ("appliance.ovf", &descriptor(&["disk.img"])),
        ("disk.img", &disk),
    ]);
    let inspection = crate::inspect_bytes(&ova).unwrap();
    assert_eq!(inspection.format, DiskFormat::Ova);
    assert_eq!(inspection.detail, "ova (raw)");
}

/// A certificate is only hashed: a disk named as one would never be
/// checked, so a descriptor may not name one (nor its own descriptor or
/// manifest).
#[test]
fn a_disk_passed_off_as_a_certificate_is_refused() {
    let qcow2_with_backing_file = {
        let mut bytes = vec![0u8; 4096];
        bytes[..4].copy_from_slice(b"QFI\xfb");
        bytes
    };
    for href in ["d.cert", "D.CERT", "x.mf", "other.ovf", "d%2Ecert"] {
        let ova = archive(&[
            ("appliance.ovf", &descriptor(&[href])),
            (href, &qcow2_with_backing_file),
        ]);
        let reason = refusal(&ova);
        assert!(reason.contains("as one of its files"), "{href}: {reason}");
    }
    // Nor named by a second href beside a disk's, which readers that take
    // the last one, or the `ovf:` one, would open.
    let two_hrefs =
        b"<?xml version=\"1.0\"?><Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" \
        xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"><References>\
        <File href=\"disk.img\" ovf:href=\"evil.cert\" ovf:id=\"f1\"/></References></Envelope>";
    let ova = archive(&[
        ("appliance.ovf", two_hrefs),
        ("disk.img", &[1; 512]),
        ("evil.cert", &qcow2_with_backing_file),
    ]);
    let reason = refusal(&ova);
    assert!(reason.contains("href twice"), "{reason}");
    // A certificate nothing names is hashed and left alone.
    let ova = archive(&[
        ("appliance.ovf", &descriptor(&["disk.img"])),
        ("disk.img", &[1; 512]),
        ("appliance.cert", b"-----BEGIN CERTIFICATE-----"),
    ]);
    accepted(&ova);
}

/// The tar reader holds a GNU long name or PAX records in memory whole:
/// an 8 GiB "name" stops after a MiB, however much more is sent.
#[test]
fn extension_headers_are_bounded_before_they_fill_memory() {
    let start = entry("appliance.ovf", EntryType::Regular, &descriptor(&[]));
    for kind in [EntryType::GNULongName, EntryType::XHeader] {
        let mut bytes = start.clone();
        bytes.extend(block("././@LongLink", kind, 8 << 30));
        let read = Cell::new(0);
        // The first 64 MiB of it: enough to tell a bound from none.
        let endless = Counting {
            inner: std::io::Cursor::new(bytes).chain(std::io::repeat(b'1').take(64 << 20)),
            read: &read,
        };
        let reason = inspect(endless).unwrap_err();
        assert!(read.get() < 3 << 20, "{kind:?}: read {} bytes", read.get());
        assert!(reason.contains("larger than 1 MiB"), "{kind:?}: {reason}");
    }
    // A long name as GNU tar writes it is read.
    let mut bytes = descriptor_naming_a_long_name();
    bytes.extend(entry("ddd.img", EntryType::Regular, &[1; 512]));
    bytes.extend_from_slice(&[0; 1024]);
    accepted(&bytes);
}

#[test]
fn pax_records_tar_readers_apply_differently_are_refused() {
    let with_records = |kind: EntryType, records: &[u8]| {
        let mut bytes = entry(
            "appliance.ovf",
            EntryType::Regular,
            &descriptor(&["disk.img"]),
        );
        bytes.extend(entry("pax", kind, records));
        bytes.extend(entry("disk.img", EntryType::Regular, &[1; 512]));
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    };
    let with_pax = |kind: EntryType, records: &[(&str, &str)]| with_records(kind, &pax(records));
    let local = EntryType::XHeader;
    for records in [
        &[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")][..],
        &[("mtime", "1"), ("mtime", "2")],
        // The tar crate falls back to the header's 512, Python reads 512
        // or 0; a size past the header's would take in the next header.
        &[("size", " 512")],
        &[("size", "5_12")],
        &[("size", "1024")],
    ] {
        let reason = refusal(&with_pax(local, records));
        assert!(
            reason.contains("apply differently"),
            "{records:?}: {reason}"
        );
    }
    // Python's tarfile applies a global header's path to the entries
    // after it; the tar crate gives it the records before it.
    let global = EntryType::XGlobalHeader;
    for records in [&[("path", "../../etc/x")][..], &[("comment", "git")]] {
        let reason = refusal(&with_pax(global, records));
        assert!(reason.contains("global header"), "{records:?}: {reason}");
    }
    assert_eq!(pax(&[("mtime", "1")]), b"11 mtime=1\n");
    let malformed = with_records(local, b"99 mtime=1\n");
    assert!(refusal(&malformed).contains("malformed PAX"));
    // What Python's tarfile and GNU tar write is read: a size in the PAX
    // header where the header's is 0 (past 8 GiB), a path the same as the
    // name the entry is read by.
    let read_alike = [
        &[("mtime", "1.5"), ("uname", "me")][..],
        &[("size", "512"), ("path", "disk.img")],
    ];
    for records in read_alike {
        let bytes = with_pax(local, records);
        accepted(&bytes);
    }
    let mut bytes = entry(
        "appliance.ovf",
        EntryType::Regular,
        &descriptor(&["disk.img"]),
    );
    bytes.extend(entry("pax", local, &pax(&[("size", "512")])));
    bytes.extend(block("disk.img", EntryType::Regular, 0));
    bytes.extend_from_slice(&[1; 512]);
    bytes.extend_from_slice(&[0; 1024]);
    accepted(&bytes);
}

/// A GNU long name and a PAX path on one entry: the tar crate reads the
/// first, GNU tar the second.
#[test]
fn a_long_name_and_a_pax_path_that_differ_are_refused() {
    let mut bytes = descriptor_naming_a_long_name();
    bytes.extend(entry(
        "pax",
        EntryType::XHeader,
        &pax(&[("path", "x.cert")]),
    ));
    bytes.extend(entry("ddd.img", EntryType::Regular, &[1; 512]));
    bytes.extend_from_slice(&[0; 1024]);
    assert!(refusal(&bytes).contains("apply differently"));
}

/// An entry: its name and bytes.
type Named<'a> = (&'a str, &'a [u8]);

/// Each file has one spelling: what another reader would take for the same
/// file as another entry, or for a file elsewhere, is refused.
#[test]
fn names_other_readers_spell_otherwise_are_refused() {
    let ovf = descriptor(&["disk.img"]);
    let cases: [(&[Named], &str); 6] = [
        (
            &[("appliance.ovf", &ovf), ("./disk.img", &[1; 512])],
            "not a plain name",
        ),
        (
            &[("appliance.ovf", &ovf), ("a//disk.img", &[1; 512])],
            "not a plain name",
        ),
        (
            &[("appliance.ovf", &ovf), ("C:disk.img", &[1; 512])],
            "with a colon",
        ),
        (
            &[
                ("appliance.ovf", &ovf),
                ("disk.img", &[1; 512]),
                ("DISK.img", &[2; 512]),
            ],
            "two entries",
        ),
        (
            &[
                ("appliance.ovf", &ovf),
                ("disk.img", &[1; 512]),
                ("b.ovf", &ovf),
            ],
            "second descriptor",
        ),
        (
            &[
                ("appliance.ovf", &ovf),
                ("disk.img", &[1; 512]),
                ("inner.img", &archive(&[("x.ovf", &ovf)])),
            ],
            "an archive or descriptor inside",
        ),
    ];
    for (entries, named) in cases {
        let reason = refusal(&archive(entries));
        assert!(reason.contains(named), "{named}: {reason}");
    }
}

/// Only zeros may follow the archive's end: a VHD footer there makes a
/// file that qemu reads as a disk.
#[test]
fn bytes_after_the_end_are_refused_but_zeros() {
    let mut ova = archive(&[("appliance.ovf", &descriptor(&[]))]);
    ova.extend_from_slice(&[0; 8192]);
    accepted(&ova);
    let mut footer = vec![0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    ova.extend_from_slice(&footer);
    assert!(refusal(&ova).contains("followed by bytes"));
    // Without its closing blocks, an archive whose last entry ends in a
    // VHD footer is a fixed VHD to qemu.
    let mut ended_by_a_footer = vec![0u8; 1024];
    ended_by_a_footer[512..].copy_from_slice(&footer);
    let mut ova = entry("appliance.ovf", EntryType::Regular, &descriptor(&[]));
    ova.extend(entry(
        "appliance.cert",
        EntryType::Regular,
        &ended_by_a_footer,
    ));
    assert!(refusal(&ova).contains("does not end as tar archives do"));
}

/// An archive whose first bytes are also another format's signature (a
/// first entry named `vhdxfile…`) is both, and refused as such.
#[test]
fn an_ova_that_is_a_disk_too_is_refused() {
    let ova = archive(&[("vhdxfile.ovf", &descriptor(&[]))]);
    assert!(refusal(&ova).contains("both an OVA (tar) archive and a VHDX image"));
}

/// A VHDX's metadata region, past its first MiB, is read inside an OVA
/// too: a differencing one is refused, a plain one's size is read.
#[test]
fn vhdx_disks_inside_are_checked_for_a_parent() {
    for (parent, expected) in [(false, Ok(Some(100 << 20))), (true, Err(()))] {
        let vhdx = crate::disk::vhdx_image(2 << 20, 3 << 20, 100 << 20, parent);
        let ova = archive(&[("a.ovf", &descriptor(&["d.vhdx"])), ("d.vhdx", &vhdx)]);
        let inspection = crate::inspect_bytes(&ova);
        match expected {
            Ok(size) => assert_eq!(inspection.unwrap().virtual_size, size),
            Err(()) => assert!(inspection.unwrap_err().contains("differencing VHDX")),
        }
    }
}

/// A store's file name made into one the archive check takes (the sync
/// names its packages' descriptors so).
#[test]
fn plain_entry_names_pass_the_name_check() {
    assert_eq!(plain_entry_name("appliance v1.ovf"), "appliance v1.ovf");
    assert_eq!(plain_entry_name("C:a\\b\n\u{202e}.ovf"), "C_a_b__.ovf");
    for name in ["C:a\\b\n\u{202e}.ovf", "x.ovf. ", "a/b", "..", ""] {
        let plain = plain_entry_name(name);
        assert_eq!(check_name(&plain), Ok(()), "{name:?} -> {plain:?}");
    }
}

#[test]
fn manifest_lines_are_read_in_both_spellings() {
    assert_eq!(
        manifest_line("SHA256(disk1.vmdk)= ABCD").unwrap(),
        Some((Algorithm::Sha256, "disk1.vmdk".into(), "abcd".into()))
    );
    assert_eq!(
        manifest_line("SHA1(a (1).ovf)=ff").unwrap(),
        Some((Algorithm::Sha1, "a (1).ovf".into(), "ff".into()))
    );
    assert_eq!(manifest_line("  ").unwrap(), None);
    assert!(manifest_line("MD5(x)= 00").is_err());
    assert!(manifest_line("garbage").is_err());
}

#[test]
fn names_stay_inside_the_archive() {
    assert!(check_name("appliance.ovf").is_ok());
    assert!(check_name("disks/disk1.vmdk").is_ok());
    for bad in [
        "/etc/passwd",
        "../x.vmdk",
        "a/../../x",
        "a\\b",
        "",
        "evil\u{202e}.vmdk",
    ] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
}
