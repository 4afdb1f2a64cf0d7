//! A personal store's `.ovf` descriptors: the disks each names, checked to
//! be beside it, and the package (an OVA: a tar of the descriptor and its
//! disks) that a sync records as the image.

use std::collections::HashMap;

use app::model::Principal;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::Source;
use crate::blob::ByteStream;
use crate::core::Core;
use crate::personal::StoreFile;

/// The largest `.ovf` descriptor a sync reads.
const MAX_DESCRIPTOR: u64 = 4 << 20;

/// The files an OVF descriptor names (`<File ovf:href="…">`), read by the
/// inspector's parser, with every bound and check an uploaded descriptor
/// has: plain names, at most 1,024 of them and 1 KiB each, no DOCTYPE, few
/// attributes to an element.
fn ovf_references(descriptor: &[u8]) -> Result<Vec<String>, String> {
    let metadata = depot_inspect::ovf::parse(descriptor)?;
    Ok(metadata.files.into_iter().map(|file| file.href).collect())
}

/// An `.ovf` as a sync found it: its descriptor's bytes and the disks it
/// names that are beside it, or the names of those that are not.
pub(super) struct OvfPackage {
    descriptor: Vec<u8>,
    disks: Vec<Disk>,
    pub missing: Vec<String>,
}

/// A disk an `.ovf` names, as the store listed it.
struct Disk {
    href: String,
    relative: String,
    size: u64,
    source: Source,
}

impl OvfPackage {
    /// What the package is made of: the descriptor's and each disk's name
    /// and source, as a digest (the list can be long).
    pub(super) fn source(&self, file: &StoreFile) -> Source {
        let mut digest = Sha256::new();
        let descriptor = (&file.name, Source::file(file));
        let disks = self
            .disks
            .iter()
            .map(|disk| (&disk.href, disk.source.clone()));
        for (name, source) in std::iter::once(descriptor).chain(disks) {
            digest.update(format!("{name}\0{}\n", source.as_str()));
        }
        Source::package(&hex::encode(digest.finalize()))
    }

    /// The most the package's archive can take: each entry's header, a
    /// long-name entry's if its name needs one, its bytes padded to tar's
    /// 512-byte blocks, and the two closing blocks.
    pub(super) fn size_bound(&self, name: &str) -> u64 {
        // Saturating: a descriptor may name one huge file many times.
        let blocks = |bytes: u64| bytes.div_ceil(512).saturating_mul(512);
        let entry = |name: &str, size: u64| {
            (1024 + blocks(name.len() as u64 + 1)).saturating_add(blocks(size))
        };
        let disks = self.disks.iter().fold(0_u64, |sum, disk| {
            sum.saturating_add(entry(&disk.href, disk.size))
        });
        entry(name, self.descriptor.len() as u64)
            .saturating_add(disks)
            .saturating_add(1024)
    }
}

impl Core {
    /// Reads an `.ovf` and finds the disks it names beside it (in
    /// `present`, the store's files by folder and name).
    pub(super) async fn read_package(
        &self,
        user: &Principal,
        file: &StoreFile,
        present: &HashMap<(&str, &str), &StoreFile>,
    ) -> Result<OvfPackage, String> {
        let descriptor = self.read_descriptor(user, file).await?;
        // Parsing up to 4 MiB of XML is work for a blocking thread.
        let (descriptor, references) = tokio::task::spawn_blocking(move || {
            let references = ovf_references(&descriptor);
            (descriptor, references)
        })
        .await
        .map_err(|error| format!("unreadable descriptor: {error}"))?;
        let mut package = OvfPackage {
            disks: Vec::new(),
            missing: Vec::new(),
            descriptor: Vec::new(),
        };
        for href in references? {
            match disk_of(file, &href, present) {
                Some(disk) => package.disks.push(Disk {
                    relative: disk.relative.clone(),
                    size: disk.size,
                    source: Source::file(disk),
                    href,
                }),
                None => package.missing.push(href),
            }
        }
        package.descriptor = descriptor;
        Ok(package)
    }

    /// An `.ovf`'s bytes, refused past [`MAX_DESCRIPTOR`].
    async fn read_descriptor(&self, user: &Principal, file: &StoreFile) -> Result<Vec<u8>, String> {
        if file.size > MAX_DESCRIPTOR {
            return Err("the descriptor is larger than 4 MiB".into());
        }
        let unreadable = |error: std::io::Error| format!("unreadable: {error}");
        let mut stream = super::read_store_file(&*self.personal, user.id, &file.relative)
            .await
            .map_err(unreadable)?;
        // Read at most the cap: the file may have grown since it was listed.
        let mut descriptor = Vec::new();
        while let Some(chunk) = stream.try_next().await.map_err(unreadable)? {
            descriptor.extend_from_slice(&chunk);
            if descriptor.len() as u64 > MAX_DESCRIPTOR {
                return Err("the descriptor is larger than 4 MiB".into());
            }
        }
        Ok(descriptor)
    }

    /// Streams an `.ovf` (as `name`) and every disk it names as one tar
    /// archive, descriptor first: the OVA it stands for.
    pub(super) fn package_ovf(
        &self,
        user: &Principal,
        name: &str,
        package: OvfPackage,
    ) -> ByteStream {
        let OvfPackage {
            descriptor, disks, ..
        } = package;
        // As the store names it, in what the inspector takes in a name.
        let name = depot_inspect::ova::plain_entry_name(name);
        let (personal, user_id) = (self.personal.clone(), user.id);
        let runtime = tokio::runtime::Handle::current();
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        tokio::task::spawn_blocking(move || {
            let writer =
                std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(sender.clone()));
            let mut archive = tar::Builder::new(writer);
            let written = (|| -> std::io::Result<()> {
                let mut header = tar::Header::new_gnu();
                header.set_size(descriptor.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                archive.append_data(&mut header, &name, descriptor.as_slice())?;
                for disk in &disks {
                    // Each disk is opened when its turn comes, and must
                    // still have the size the listing gave the header.
                    let stream = runtime.block_on(super::read_store_file(
                        &*personal,
                        user_id,
                        &disk.relative,
                    ))?;
                    let reader = tokio_util::io::SyncIoBridge::new_with_handle(
                        tokio_util::io::StreamReader::new(stream),
                        runtime.clone(),
                    );
                    let mut header = tar::Header::new_gnu();
                    header.set_size(disk.size);
                    header.set_mode(0o644);
                    header.set_cksum();
                    archive.append_data(
                        &mut header,
                        &disk.href,
                        ExactSize::new(reader, disk.size),
                    )?;
                }
                std::io::Write::flush(&mut archive.into_inner()?)
            })();
            if let Err(error) = written {
                let _ = sender.blocking_send(Err(error));
            }
        });
        futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .boxed()
    }
}

/// The file an `.ovf`'s reference names, beside the descriptor: `None` if
/// it is not in the store or leads out of its folder.
fn disk_of<'a>(
    file: &StoreFile,
    href: &str,
    present: &HashMap<(&str, &str), &'a StoreFile>,
) -> Option<&'a StoreFile> {
    if href
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return None;
    }
    let (sub, name) = href.rsplit_once('/').unwrap_or(("", href));
    let folder = match (file.folder.as_str(), sub) {
        ("", sub) => sub.to_owned(),
        (base, "") => base.to_owned(),
        (base, sub) => format!("{base}/{sub}"),
    };
    present.get(&(folder.as_str(), name)).copied()
}

/// A reader that yields exactly `size` bytes or fails: a disk that changed
/// size since it was listed must not produce a malformed archive.
struct ExactSize<R> {
    inner: std::io::Take<R>,
    left: u64,
}

impl<R: std::io::Read> ExactSize<R> {
    fn new(inner: R, size: u64) -> Self {
        Self {
            inner: std::io::Read::take(inner, size),
            left: size,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ExactSize<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if read == 0 && self.left > 0 && !buffer.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a disk changed while it was packaged",
            ));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// Hands what a tar builder writes to a stream, chunk by chunk.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(bytes)))
            .map_err(|_| std::io::Error::other("the reader stopped"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn ovf_descriptors_name_their_disks() {
        let descriptor = br#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="disk1.vmdk" ovf:id="file1"/>
    <File ovf:href="disks/disk2.vmdk" ovf:id="file2"></File>
  </References>
</Envelope>"#;
        assert_eq!(
            ovf_references(descriptor).unwrap(),
            ["disk1.vmdk", "disks/disk2.vmdk"]
        );
    }

    /// The reservation for a package is bounded by its archive's length,
    /// which must therefore never be more, whatever its names' lengths
    /// (past 100 bytes, tar adds a long-name entry).
    #[test]
    fn a_package_is_never_longer_than_its_bound() {
        for name_length in [1, 99, 100, 101, 511, 512, 600] {
            for size in [0_u64, 1, 511, 512, 513, 5000] {
                let name = "n".repeat(name_length);
                let package = OvfPackage {
                    descriptor: vec![b'x'; size as usize],
                    disks: vec![Disk {
                        href: format!("{}.vmdk", "d".repeat(name_length)),
                        relative: String::new(),
                        size,
                        source: Source::package("test"),
                    }],
                    missing: Vec::new(),
                };
                let mut archive = tar::Builder::new(Vec::new());
                for (path, bytes) in [(&name, size), (&package.disks[0].href, size)] {
                    let mut header = tar::Header::new_gnu();
                    header.set_size(bytes);
                    header.set_mode(0o644);
                    header.set_cksum();
                    archive
                        .append_data(&mut header, path, std::io::repeat(7).take(bytes))
                        .unwrap();
                }
                let length = archive.into_inner().unwrap().len() as u64;
                let bound = package.size_bound(&name);
                assert!(length <= bound, "{name_length} {size}: {length} > {bound}");
                assert!(
                    bound - length <= 2048,
                    "{name_length} {size}: {bound} ≫ {length}"
                );
            }
        }
    }
}
