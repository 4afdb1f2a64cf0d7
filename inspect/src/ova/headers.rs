//! Every header block of an OVA read strictly, as each tar reader reads it
//! alike.
//!
//! The tar crate reads a header's numbers leniently (a `+` before the
//! digits, a newline before them), where GNU tar and libarchive refuse such
//! a header and look for the next one in the following block: inside the
//! entry's own bytes. An archive could so hold one file for Depot and
//! another, never inspected, for the tar a user unpacks it with. So the
//! blocks the crate read between two entries (long names, PAX records, then
//! the entry's header) are walked here again, and each header must be a
//! ustar or GNU one whose checksum and size every reader reads the same.

/// The bytes the tar reader took while it looked for an entry, from `start`
/// in the archive: its extension headers and their records, then the
/// entry's own header.
#[derive(Debug, Default)]
pub(super) struct Between {
    pub(super) start: u64,
    pub(super) bytes: Vec<u8>,
}

const BLOCK: u64 = 512;

fn refused(why: &str) -> String {
    format!("the archive holds a header that tar readers read differently: {why}")
}

/// Checks every header from `chain_start` (where the entry before ended, to
/// a block) to the entry's own at `header_at`; only long-name and PAX
/// headers may stand between.
pub(super) fn check_headers(
    between: &Between,
    chain_start: u64,
    header_at: u64,
) -> Result<(), String> {
    let block = |at: u64| -> Option<&[u8]> {
        let offset = usize::try_from(at.checked_sub(between.start)?).ok()?;
        between
            .bytes
            .get(offset..offset.checked_add(BLOCK as usize)?)
    };
    let mut at = chain_start;
    loop {
        let header = block(at).ok_or_else(|| refused("it is not where the entry before ends"))?;
        let size = strict_header(header)?;
        if at == header_at {
            return Ok(());
        }
        if !matches!(header[156], b'L' | b'K' | b'x') {
            return Err(refused(
                "an entry stands where a long name or PAX header should",
            ));
        }
        at = size
            .checked_next_multiple_of(BLOCK)
            .and_then(|padded| at.checked_add(BLOCK)?.checked_add(padded))
            .filter(|next| *next <= header_at)
            .ok_or_else(|| refused("its records run past the entry's header"))?;
    }
}

/// A header's size, if it is a ustar or GNU header whose checksum and size
/// are written as every reader reads them.
fn strict_header(header: &[u8]) -> Result<u64, String> {
    let posix = &header[257..265] == b"ustar\x0000";
    let gnu = &header[257..265] == b"ustar  \x00";
    if !posix && !gnu {
        return Err(refused("it is neither a ustar nor a GNU one"));
    }
    let written = octal(&header[148..156]).ok_or_else(|| refused("its checksum"))?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(at, byte)| {
            if (148..156).contains(&at) {
                32
            } else {
                u64::from(*byte)
            }
        })
        .sum();
    if written != sum {
        return Err(refused("its checksum does not match"));
    }
    let size = &header[124..136];
    match size[0] {
        // GNU's base-256, for sizes of 8 GiB and more: the value in the
        // field's other bytes, big-endian, here fitting 64 bits.
        0x80 if size[1..4].iter().all(|&byte| byte == 0) => Ok(size[4..]
            .iter()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte))),
        _ => octal(size).ok_or_else(|| refused("its size")),
    }
}

/// An octal number as all readers read it: spaces, one digit or more, then
/// only spaces and NULs.
fn octal(field: &[u8]) -> Option<u64> {
    let digits_from = field.iter().position(|&byte| byte != b' ')?;
    let rest = &field[digits_from..];
    let digits_to = rest
        .iter()
        .position(|byte| !(b'0'..=b'7').contains(byte))
        .unwrap_or(rest.len());
    if digits_to == 0
        || !rest[digits_to..]
            .iter()
            .all(|&byte| byte == b' ' || byte == 0)
    {
        return None;
    }
    rest[..digits_to].iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(8)?.checked_add(u64::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_path("disk.vmdk").unwrap();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    /// Writes `checksum` into the field and the header's sum after it.
    fn with_checksum(mut header: Vec<u8>, checksum: impl Fn(u64) -> String) -> Vec<u8> {
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|&byte| u64::from(byte)).sum();
        let written = checksum(sum);
        header[148..148 + written.len()].copy_from_slice(written.as_bytes());
        header
    }

    #[test]
    fn numbers_are_read_only_as_every_reader_reads_them() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"  17 \0\0\0"), Some(0o17));
        for lenient in [
            &b"+0000644"[..],
            b"\n000644\0",
            b"\t000644\0",
            b"0008\0\0\0\0",
            b"\0\0\0\0",
        ] {
            assert_eq!(octal(lenient), None, "{lenient:?}");
        }
        assert_eq!(octal(b"06 4\0\0\0\0"), None);
    }

    #[test]
    fn headers_read_alike_pass_and_lenient_ones_are_refused() {
        assert_eq!(strict_header(&header(4096)), Ok(4096));
        // The tar crate reads a `+` before the checksum's digits; GNU tar
        // and libarchive skip the header, and read the next block as one.
        let plus = with_checksum(header(4096), |sum| format!("+{sum:06o}\0"));
        assert!(tar::Header::from_byte_slice(&plus).cksum().is_ok());
        assert!(strict_header(&plus).unwrap_err().contains("checksum"));
        let wrong = with_checksum(header(4096), |sum| format!("{:06o}\0 ", sum + 1));
        assert!(strict_header(&wrong).is_err());
        let mut newline = header(0);
        newline[124..136].copy_from_slice(b"\n0000004000\0");
        let newline = with_checksum(newline, |sum| format!("{sum:06o}\0 "));
        assert!(strict_header(&newline).unwrap_err().contains("size"));
        let mut old = header(10);
        old[257..265].fill(0);
        let old = with_checksum(old, |sum| format!("{sum:06o}\0 "));
        assert!(strict_header(&old).unwrap_err().contains("neither"));
        // GNU's base-256 size, as the tar crate writes a large one.
        let mut large = tar::Header::new_gnu();
        large.set_size(1 << 40);
        large.set_cksum();
        assert_eq!(strict_header(large.as_bytes()), Ok(1 << 40));
    }

    #[test]
    fn only_extension_headers_stand_between_entries() {
        let mut long_name = tar::Header::new_gnu();
        long_name.set_entry_type(tar::EntryType::GNULongName);
        long_name.set_size(700);
        long_name.set_cksum();
        let mut bytes = long_name.as_bytes().to_vec();
        bytes.resize(512 + 1024, b'a');
        bytes.extend(header(3));
        let between = Between { start: 1024, bytes };
        assert_eq!(check_headers(&between, 1024, 1024 + 1536), Ok(()));
        // Not where the entry before ended, or not this entry's header.
        assert!(check_headers(&between, 512, 1024 + 1536).is_err());
        assert!(check_headers(&between, 1024, 1024 + 1024).is_err());
        let mut file_first = header(1024);
        file_first.extend(vec![0; 1024]);
        file_first.extend(header(3));
        let between = Between {
            start: 0,
            bytes: file_first,
        };
        assert!(check_headers(&between, 0, 1536)
            .unwrap_err()
            .contains("an entry stands"));
    }
}
