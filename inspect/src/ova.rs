//! OVA archives, read entry by entry as they stream past: the descriptor
//! first, then the manifest and the disks, each disk inspected as a disk
//! (its first and last bytes kept, the rest only hashed for the manifest).
//!
//! Refused: entries with absolute names, `..`, backslashes, colons, or a
//! name another reader spells otherwise (`./a`, `a//b`); links, devices,
//! sparse files and anything but plain files; two entries of one name, even
//! told apart only by case; a first entry that is not the `.ovf`, or a
//! second one; a disk that fails the disk rules; a descriptor that names a
//! file the archive does not hold, or names the descriptor, manifest or
//! certificate as a disk; a manifest (SHA-1 or SHA-256) that does not match
//! the entries, or leaves one out; long names or PAX records over 1 MiB, or
//! PAX records tar readers apply differently; bytes after the archive's end
//! that are not zeros.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::DiskFormat;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::disk::{self, DiskInfo};
use super::ovf::{self, OvfMetadata};
use super::{stored_size, Inspection};
use headers::{check_headers, Between};

mod headers;

/// The largest manifest read.
const MAX_MANIFEST: u64 = 1 << 20;

/// The most entries an archive may hold.
const MAX_ENTRIES: usize = 1024;

/// A manifest's digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Algorithm {
    Sha1,
    Sha256,
}

/// One line of a manifest: `SHA256(disk1.vmdk)= 8f4…`.
fn manifest_line(line: &str) -> Result<Option<(Algorithm, String, String)>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let unreadable = || {
        format!(
            "unreadable manifest line: {}",
            line.chars().take(80).collect::<String>()
        )
    };
    let (algorithm, rest) = line.split_once('(').ok_or_else(unreadable)?;
    let algorithm = match algorithm.trim().to_ascii_uppercase().as_str() {
        "SHA1" => Algorithm::Sha1,
        "SHA256" => Algorithm::Sha256,
        other => {
            return Err(format!(
                "the manifest uses {other}; SHA1 and SHA256 are read"
            ))
        }
    };
    let (name, digest) = rest.rsplit_once(")=").ok_or_else(unreadable)?;
    Ok(Some((
        algorithm,
        name.trim().to_owned(),
        digest.trim().to_ascii_lowercase(),
    )))
}

/// The longest entry name taken, as long as a descriptor's `href` may be:
/// each name is kept until the archive's end, and a thousand long names of
/// a MiB each would hold gigabytes.
const MAX_NAME: usize = 1024;

/// A name an entry may have: relative, plain, inside the archive.
fn check_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(120).collect();
    if name.len() > MAX_NAME {
        return Err(format!(
            "the archive holds an entry named '{shown}…', longer than {MAX_NAME} bytes"
        ));
    }
    // One spelling per file: `./a`, `a//b` and `a/` name what `a` and
    // `a/b` do to other readers, and Windows drops a name's trailing dots
    // and spaces (`x.cert.` is `x.cert`); a colon is a drive (`C:x`) there.
    if name.is_empty()
        || name.starts_with('/')
        || name.contains(['\\', '\0'])
        || name.split('/').any(|part| {
            part.is_empty() || part == "." || part == ".." || part.ends_with(['.', ' '])
        })
    {
        return Err(format!(
            "the archive holds an entry named '{shown}', which is not a plain name inside it"
        ));
    }
    if name.chars().any(refused_in_names) {
        return Err(format!(
            "the archive holds an entry named '{shown}', with a colon, control or \
             formatting characters"
        ));
    }
    Ok(())
}

/// A character an entry's name may not hold: a colon (a drive, `C:x`, on
/// Windows), control and bidirectional formatting characters.
fn refused_in_names(c: char) -> bool {
    c == ':' || c.is_control() || crate::is_bidi_control(c)
}

/// A file name (one segment) as an entry may be named: each character
/// [`check_name`] refuses, and a backslash, an underscore; a trailing dot
/// or space dropped (Windows drops them).
pub fn plain_entry_name(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c == '\\' || c == '/' || refused_in_names(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let plain = plain.trim_end_matches(['.', ' ']);
    match plain {
        "" | "." | ".." => "_".to_owned(),
        plain => plain.to_owned(),
    }
}

/// An entry's digests, with the algorithms the manifest uses.
struct Digests {
    sha1: Option<String>,
    sha256: Option<String>,
}

/// An entry's bytes as they are read, hashed on the way.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

impl<'a> Hashing<'a> {
    fn new(inner: &'a mut dyn Read, algorithms: &[Algorithm]) -> Self {
        Self {
            inner,
            sha1: algorithms.contains(&Algorithm::Sha1).then(Sha1::new),
            sha256: algorithms.contains(&Algorithm::Sha256).then(Sha256::new),
        }
    }

    /// Reads the rest of the entry, hashing it.
    fn drain(&mut self) -> Result<(), String> {
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            match self.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(format!("unreadable archive: {error}")),
            }
        }
    }

    fn digests(self) -> Digests {
        Digests {
            sha1: self.sha1.map(|hasher| hex::encode(hasher.finalize())),
            sha256: self.sha256.map(|hasher| hex::encode(hasher.finalize())),
        }
    }
}

impl Read for Hashing<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        let fresh = &buffer[..read];
        if let Some(hasher) = self.sha1.as_mut() {
            hasher.update(fresh);
        }
        if let Some(hasher) = self.sha256.as_mut() {
            hasher.update(fresh);
        }
        Ok(read)
    }
}

/// The most bytes the tar reader may read between two entries: headers,
/// padding, and the GNU long names and PAX records it holds in memory whole
/// (an 8 GiB "long name" would otherwise be read into memory).
const MAX_BETWEEN_ENTRIES: u64 = 1 << 20;

const EXTENSIONS_TOO_LARGE: &str =
    "the archive's extension headers (long names, PAX records) are larger than 1 MiB";

/// The archive's bytes as the tar reader takes them: at most `allowance`
/// more, which the loop over the entries sets to [`MAX_BETWEEN_ENTRIES`]
/// while the reader looks for the next entry and lifts inside one.
struct Metered<'a, R> {
    inner: R,
    allowance: &'a Cell<u64>,
    /// What the reader takes while it looks for the next entry, kept to be
    /// read again strictly (`headers`).
    between: &'a RefCell<Between>,
    /// How many bytes were read so far.
    position: u64,
    /// How many zeros the bytes read so far end with.
    trailing_zeros: u64,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let allowance = self.allowance.get();
        if allowance == 0 {
            return Err(std::io::Error::other(EXTENSIONS_TOO_LARGE));
        }
        let want = usize::try_from(allowance).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = self.inner.read(&mut buffer[..want])?;
        self.allowance.set(allowance - read as u64);
        let fresh = &buffer[..read];
        if allowance != u64::MAX {
            let mut between = self.between.borrow_mut();
            if between.bytes.is_empty() {
                between.start = self.position;
            }
            between.bytes.extend_from_slice(fresh);
        }
        self.position += read as u64;
        self.trailing_zeros = match fresh.iter().rposition(|&byte| byte != 0) {
            Some(last) => (read - last - 1) as u64,
            None => self.trailing_zeros + read as u64,
        };
        Ok(read)
    }
}

/// Refuses PAX records that tar readers apply differently: sparse files
/// (read as their map by some, expanded by others), a key given twice (the
/// first wins in one reader, the last in another), a malformed record, a
/// size that is not plain digits (the tar crate then falls back to the
/// header's, Python reads ` 512` as 512) or that a non-zero size in the
/// header contradicts (readers without PAX take that one), and a path other
/// than the name the tar crate read (a GNU long name wins there, the PAX
/// path in GNU tar).
fn check_pax<'a>(
    records: impl Iterator<Item = std::io::Result<tar::PaxExtension<'a>>>,
    header_size: u64,
    name: &[u8],
) -> Result<(), String> {
    let mut keys = HashSet::new();
    for record in records {
        let record = record.map_err(|_| "the archive holds a malformed PAX header")?;
        let key = record
            .key()
            .map_err(|_| "the archive holds a malformed PAX header")?;
        let value = record.value_bytes();
        let refused = |why: &str| {
            format!(
                "the archive holds a PAX header setting '{}'{why}, which tar readers apply differently",
                key.chars().take(80).collect::<String>()
            )
        };
        if key.starts_with("GNU.sparse")
            || key.starts_with("SCHILY.sparse")
            || key == "SCHILY.realsize"
        {
            return Err(refused(
                " (a sparse file: write the archive with tar --format=ustar, or bsdtar --no-read-sparse)",
            ));
        }
        if !keys.insert(key) {
            return Err(refused(" twice"));
        }
        let wrong = match key {
            "size" => {
                let digits =
                    !value.is_empty() && value.len() <= 20 && value.iter().all(u8::is_ascii_digit);
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|value| value.parse::<u64>().ok());
                !digits || size.is_none() || (header_size != 0 && size != Some(header_size))
            }
            "path" => value != name,
            _ => false,
        };
        if wrong {
            return Err(refused(" to another value than its header's"));
        }
    }
    Ok(())
}

/// Bytes after the end of the archive, which must be zeros: anything else
/// (a VHD footer, a second archive) is a file some tool reads as more.
fn check_after_the_end(mut rest: impl Read) -> Result<(), String> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match rest.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read) if chunk[..read].iter().all(|&byte| byte == 0) => {}
            Ok(_) => return Err("the archive is followed by bytes that are not part of it".into()),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("unreadable archive: {error}")),
        }
    }
}

/// The sum of the disks' capacities a descriptor declares (checked).
pub fn total_capacity(metadata: &OvfMetadata) -> Option<u64> {
    metadata
        .disks
        .iter()
        .map(|disk| disk.capacity_bytes)
        .try_fold(0u64, |sum, capacity| sum.checked_add(capacity?))
        .filter(|_| !metadata.disks.is_empty())
}

/// What the guest's disks hold in all: each disk of the descriptor's
/// `DiskSection` by its own file where that tells its size (a capacity is
/// only what the descriptor says), else by its capacity; other files (a
/// readme) are no disk of the guest. Without a `DiskSection`, the disks the
/// archive holds (unknown if one of them tells no size).
fn guest_disks_size(metadata: &OvfMetadata, disks: &[(String, DiskInfo)]) -> Option<u64> {
    fn sum(mut sizes: impl Iterator<Item = Option<u64>>) -> Option<u64> {
        sizes.try_fold(0u64, |sum, size| sum.checked_add(size?))
    }
    if metadata.disks.is_empty() {
        return sum(disks.iter().map(|(_, info)| info.virtual_size)).filter(|_| !disks.is_empty());
    }
    sum(metadata.disks.iter().map(|disk| {
        let file = disk.file.as_deref();
        let inspected = disks.iter().find(|(name, _)| Some(name.as_str()) == file);
        inspected
            .and_then(|(_, info)| info.virtual_size)
            .or(disk.capacity_bytes)
    }))
}

/// Inspects an OVA as it streams past.
pub fn inspect(reader: impl Read) -> Result<Inspection, String> {
    let allowance = Cell::new(MAX_BETWEEN_ENTRIES);
    let between = RefCell::new(Between::default());
    let mut archive = tar::Archive::new(Metered {
        inner: reader,
        allowance: &allowance,
        between: &between,
        position: 0,
        trailing_zeros: 0,
    });
    let mut entries = archive
        .entries()
        .map_err(|error| format!("unreadable archive: {error}"))?;
    let mut names = HashSet::new();
    let mut folded_names = HashSet::new();
    let mut descriptor: Option<OvfMetadata> = None;
    let mut manifest: Option<Vec<(Algorithm, String, String)>> = None;
    // What the entries are hashed with: what the manifest uses, or both
    // while it is unknown (worked out once: a long manifest's lines gone
    // through again for each of many entries cost seconds).
    let mut algorithms = vec![Algorithm::Sha1, Algorithm::Sha256];
    let mut digests: HashMap<String, Digests> = HashMap::new();
    let mut disks: Vec<(String, DiskInfo)> = Vec::new();
    // Where the entry before ended, to a block: the next headers start there.
    let mut chain_start = 0;
    loop {
        allowance.set(MAX_BETWEEN_ENTRIES);
        between.borrow_mut().bytes.clear();
        let Some(entry) = entries.next() else { break };
        allowance.set(u64::MAX);
        let mut entry = entry.map_err(|error| format!("unreadable archive: {error}"))?;
        check_headers(&between.borrow(), chain_start, entry.raw_header_position())?;
        chain_start = entry
            .raw_file_position()
            .checked_add(entry.size())
            .and_then(|end| end.checked_next_multiple_of(512))
            .ok_or("the archive holds an entry larger than any file")?;
        let kind = entry.header().entry_type();
        // Python's tarfile applies a global header's path and size to the
        // entries after it, the tar crate neither; and the crate hands any
        // long name or PAX records before one to it, not to the next file
        // as other readers do. No exporter of OVAs writes one.
        if kind.is_pax_global_extensions() {
            return Err(
                "the archive holds a PAX global header, which tar readers apply differently".into(),
            );
        }
        let name_bytes = entry.path_bytes().into_owned();
        let header_size = entry
            .header()
            .entry_size()
            .map_err(|error| format!("unreadable archive: {error}"))?;
        if let Some(records) = entry
            .pax_extensions()
            .map_err(|error| format!("unreadable archive: {error}"))?
        {
            check_pax(records, header_size, &name_bytes)?;
        }
        let name = String::from_utf8(name_bytes)
            .map_err(|_| "the archive holds an entry whose name is not UTF-8".to_owned())?;
        check_name(&name)?;
        if !kind.is_file() {
            return Err(format!(
                "the archive holds '{name}', which is not a plain file (a link, a folder or a device)"
            ));
        }
        // Told apart without case too: extracted where names are not (Windows,
        // macOS), one would overwrite the other.
        if !folded_names.insert(name.to_lowercase()) {
            return Err(format!("the archive holds two entries named '{name}'"));
        }
        names.insert(name.clone());
        if names.len() > MAX_ENTRIES {
            return Err(format!("the archive holds more than {MAX_ENTRIES} entries"));
        }
        let lower = name.to_ascii_lowercase();
        let Some(metadata) = &descriptor else {
            if !lower.ends_with(".ovf") {
                return Err(format!(
                    "the first entry of an OVA must be its .ovf descriptor, not '{name}'"
                ));
            }
            let mut bytes = Vec::new();
            (&mut entry)
                .take(ovf::MAX_DESCRIPTOR as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|error| format!("unreadable archive: {error}"))?;
            if bytes.len() > ovf::MAX_DESCRIPTOR {
                return Err("the descriptor is larger than 4 MiB".into());
            }
            let metadata = ovf::parse(&bytes)?;
            check_hrefs(&metadata)?;
            descriptor = Some(metadata);
            let mut read = bytes.as_slice();
            let mut hashing = Hashing::new(&mut read, &[Algorithm::Sha1, Algorithm::Sha256]);
            hashing.drain()?;
            digests.insert(name, hashing.digests());
            continue;
        };
        if lower.ends_with(".ovf") {
            return Err(format!("the archive holds a second descriptor, '{name}'"));
        }
        if lower.ends_with(".mf") {
            if manifest.is_some() {
                return Err("the archive holds two manifests".into());
            }
            let mut text = String::new();
            (&mut entry)
                .take(MAX_MANIFEST + 1)
                .read_to_string(&mut text)
                .map_err(|_| "the manifest is not text".to_owned())?;
            if text.len() as u64 > MAX_MANIFEST {
                return Err("the manifest is larger than 1 MiB".into());
            }
            let lines = text
                .lines()
                .filter_map(|line| manifest_line(line).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            algorithms = [Algorithm::Sha1, Algorithm::Sha256]
                .into_iter()
                .filter(|algorithm| lines.iter().any(|line| line.0 == *algorithm))
                .collect();
            manifest = Some(lines);
            continue;
        }
        let mut hashing = Hashing::new(&mut entry, &algorithms);
        // A certificate is only hashed; the descriptor names none of them
        // (check_hrefs), so no disk goes unchecked as one.
        if lower.ends_with(".cert") {
            hashing.drain()?;
        } else {
            let mut head = Vec::new();
            crate::fill(&mut hashing, &mut head, disk::HEAD_LEN)?;
            if crate::is_archive(&head) || crate::is_descriptor(&head) {
                return Err(format!("{name}: an archive or descriptor inside an OVA"));
            }
            let beside = |other: &str| metadata.files.iter().any(|file| file.href == other);
            let (info, _) = crate::inspect_disk(&mut hashing, &head, &beside)
                .map_err(|reason| format!("{name}: {reason}"))?;
            disks.push((name.clone(), info));
        }
        digests.insert(name, hashing.digests());
    }
    allowance.set(u64::MAX);
    let mut rest = archive.into_inner();
    check_after_the_end(&mut rest)?;
    // The tar crate also takes the end of the input for the end of the
    // archive; a file that ends in its last entry's bytes could end in a
    // disk's footer (a VHD's), and be that disk to another reader.
    if rest.trailing_zeros < 512 {
        return Err("the archive does not end as tar archives do, with blocks of zeros".into());
    }
    let Some(metadata) = descriptor else {
        return Err("the archive holds no .ovf descriptor".into());
    };
    for file in &metadata.files {
        if !names.contains(&file.href) {
            return Err(format!(
                "the descriptor names '{}', which the archive does not hold",
                file.href
            ));
        }
    }
    if let Some(lines) = &manifest {
        check_manifest(lines, &digests)?;
    }
    let virtual_size = guest_disks_size(&metadata, &disks);
    let detail = if disks.is_empty() {
        "ova".to_owned()
    } else {
        let described: Vec<&str> = disks.iter().map(|(_, info)| info.detail.as_str()).collect();
        format!("ova ({})", described.join(", "))
    };
    Ok(Inspection {
        format: DiskFormat::Ova,
        virtual_size: stored_size(virtual_size)?,
        detail,
        volume_label: None,
        ovf: Some(metadata),
    })
}

/// Refuses a descriptor that names the package's own descriptor, manifest
/// or certificate as one of its files: those entries are read as what
/// their names say, so a disk named so would never be checked as a disk.
fn check_hrefs(metadata: &OvfMetadata) -> Result<(), String> {
    for file in &metadata.files {
        // As written and as readers that take it for a URI decode it.
        let decoded = percent_encoding::percent_decode_str(&file.href).decode_utf8_lossy();
        let names_one = |href: &str| {
            let lower = href.to_ascii_lowercase();
            [".ovf", ".mf", ".cert"]
                .iter()
                .any(|suffix| lower.ends_with(suffix))
        };
        if names_one(&file.href) || names_one(&decoded) {
            return Err(format!(
                "the descriptor names '{}' as one of its files: a descriptor, manifest or \
                 certificate is none",
                file.href
            ));
        }
    }
    Ok(())
}

/// Every entry but the manifest and certificate is listed, and every
/// listed digest is the entry's.
fn check_manifest(
    lines: &[(Algorithm, String, String)],
    digests: &HashMap<String, Digests>,
) -> Result<(), String> {
    let listed: HashSet<&str> = lines.iter().map(|(_, name, _)| name.as_str()).collect();
    for name in digests.keys() {
        if !name.to_ascii_lowercase().ends_with(".cert") && !listed.contains(name.as_str()) {
            return Err(format!("the manifest does not list '{name}'"));
        }
    }
    for (algorithm, name, expected) in lines {
        let Some(entry) = digests.get(name) else {
            return Err(format!(
                "the manifest lists '{name}', which the archive does not hold"
            ));
        };
        let actual = match algorithm {
            Algorithm::Sha1 => entry.sha1.as_deref(),
            Algorithm::Sha256 => entry.sha256.as_deref(),
        };
        if actual != Some(expected.as_str()) {
            return Err(format!(
                "the manifest's digest of '{name}' does not match its bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
