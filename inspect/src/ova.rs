//! OVA archives, read entry by entry as they stream past: the descriptor
//! first, then the manifest and the disks, each disk inspected as a disk
//! (its first and last bytes kept, the rest only hashed for the manifest).
//!
//! Refused: entries with absolute names, `..`, backslashes; links, devices
//! and anything but plain files; two entries of one name; a first entry that
//! is not the `.ovf`; a disk that fails the disk rules; a file the
//! descriptor names that the archive does not hold; a manifest (SHA-1 or
//! SHA-256) that does not match the entries, or leaves one out.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::DiskFormat;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::disk::{self, DiskInfo};
use super::ovf::{self, OvfMetadata};
use super::{stored_size, Inspection};

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

/// A name an entry may have: relative, plain, inside the archive.
fn check_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(120).collect();
    if name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|part| part == "..")
    {
        return Err(format!(
            "the archive holds an entry named '{shown}' outside its folder"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::is_bidi_control(c))
    {
        return Err("the archive holds an entry whose name has control characters".into());
    }
    Ok(())
}

/// What streaming one entry found: its digests and, for a disk, its ends.
struct Streamed {
    sha1: Option<String>,
    sha256: Option<String>,
    head: Vec<u8>,
    tail: Vec<u8>,
    size: u64,
}

/// Reads an entry through, hashing with the algorithms asked for and
/// keeping its first and last bytes.
fn stream_entry(entry: &mut dyn Read, algorithms: &[Algorithm]) -> Result<Streamed, String> {
    let mut sha1 = algorithms.contains(&Algorithm::Sha1).then(Sha1::new);
    let mut sha256 = algorithms.contains(&Algorithm::Sha256).then(Sha256::new);
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut size = 0u64;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let read = match entry.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(format!("unreadable archive: {error}")),
        };
        let fresh = &chunk[..read];
        size = size.saturating_add(read as u64);
        if let Some(hasher) = sha1.as_mut() {
            hasher.update(fresh);
        }
        if let Some(hasher) = sha256.as_mut() {
            hasher.update(fresh);
        }
        if head.len() < disk::HEAD_LEN {
            let take = (disk::HEAD_LEN - head.len()).min(fresh.len());
            head.extend_from_slice(&fresh[..take]);
        }
        if fresh.len() >= disk::TAIL_LEN {
            tail.clear();
            tail.extend_from_slice(&fresh[fresh.len() - disk::TAIL_LEN..]);
        } else {
            let excess = (tail.len() + fresh.len()).saturating_sub(disk::TAIL_LEN);
            tail.drain(..excess.min(tail.len()));
            tail.extend_from_slice(fresh);
        }
    }
    Ok(Streamed {
        sha1: sha1.map(|hasher| hex::encode(hasher.finalize())),
        sha256: sha256.map(|hasher| hex::encode(hasher.finalize())),
        head,
        tail,
        size,
    })
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

/// Inspects an OVA as it streams past.
pub fn inspect(reader: impl Read) -> Result<Inspection, String> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|error| format!("unreadable archive: {error}"))?;
    let mut names = HashSet::new();
    let mut descriptor: Option<OvfMetadata> = None;
    let mut manifest: Option<Vec<(Algorithm, String, String)>> = None;
    let mut digests: HashMap<String, Streamed> = HashMap::new();
    let mut disks: Vec<(String, DiskInfo)> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|error| format!("unreadable archive: {error}"))?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| "the archive holds an entry whose name is not UTF-8".to_owned())?;
        check_name(&name)?;
        if !kind.is_file() {
            return Err(format!(
                "the archive holds '{name}', which is not a plain file (a link, a folder or a device)"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("the archive holds two entries named '{name}'"));
        }
        if names.len() > MAX_ENTRIES {
            return Err(format!("the archive holds more than {MAX_ENTRIES} entries"));
        }
        let lower = name.to_ascii_lowercase();
        if descriptor.is_none() {
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
            descriptor = Some(ovf::parse(&bytes)?);
            let streamed = stream_entry(
                &mut std::io::Cursor::new(&bytes),
                &[Algorithm::Sha1, Algorithm::Sha256],
            )?;
            digests.insert(name, streamed);
            continue;
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
            manifest = Some(lines);
            continue;
        }
        // Hash with what the manifest uses, or with both while it is unknown.
        let algorithms: Vec<Algorithm> = match &manifest {
            Some(lines) => {
                let mut used: Vec<Algorithm> = lines.iter().map(|line| line.0).collect();
                used.dedup();
                used
            }
            None => vec![Algorithm::Sha1, Algorithm::Sha256],
        };
        let streamed = stream_entry(&mut entry, &algorithms)?;
        if !lower.ends_with(".cert") {
            let files = descriptor
                .as_ref()
                .map(|d| d.files.clone())
                .unwrap_or_default();
            let beside = |other: &str| files.iter().any(|file| file.href == other);
            let info = disk::detect(&streamed.head, &streamed.tail, streamed.size, &beside)
                .map_err(|reason| format!("{name}: {reason}"))?;
            if matches!(info.format, DiskFormat::Ova | DiskFormat::Ovf) {
                return Err(format!("{name}: an archive or descriptor inside an OVA"));
            }
            disks.push((name.clone(), info));
        }
        digests.insert(
            name,
            Streamed {
                head: Vec::new(),
                tail: Vec::new(),
                ..streamed
            },
        );
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
    let virtual_size = disks
        .iter()
        .map(|(_, info)| info.virtual_size)
        .try_fold(0u64, |sum, size| sum.checked_add(size?))
        .filter(|_| !disks.is_empty())
        .or_else(|| total_capacity(&metadata));
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

/// Every entry but the manifest and certificate is listed, and every
/// listed digest is the entry's.
fn check_manifest(
    lines: &[(Algorithm, String, String)],
    digests: &HashMap<String, Streamed>,
) -> Result<(), String> {
    for (name, _) in digests.iter() {
        if !name.to_ascii_lowercase().ends_with(".cert")
            && !lines.iter().any(|(_, listed, _)| listed == name)
        {
            return Err(format!("the manifest does not list '{name}'"));
        }
    }
    for (algorithm, name, expected) in lines {
        let Some(streamed) = digests.get(name) else {
            return Err(format!(
                "the manifest lists '{name}', which the archive does not hold"
            ));
        };
        let actual = match algorithm {
            Algorithm::Sha1 => streamed.sha1.as_deref(),
            Algorithm::Sha256 => streamed.sha256.as_deref(),
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
mod tests {
    use super::*;

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
}
