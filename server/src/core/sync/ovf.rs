//! A personal store's `.ovf` descriptors: the disks each names, checked to
//! be beside it, and the package (an OVA: a tar of the descriptor and its
//! disks) that a sync records as the image.

use std::collections::HashMap;

use app::error::CoreError;
use app::model::Principal;
use futures_util::{StreamExt, TryStreamExt};

use crate::blob::ByteStream;
use crate::core::Core;
use crate::personal::StoreFile;

/// The largest `.ovf` descriptor a sync reads.
const MAX_DESCRIPTOR: u64 = 4 << 20;

/// The files an OVF descriptor names (`<File ovf:href="…">`).
fn ovf_references(descriptor: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = quick_xml::Reader::from_reader(descriptor);
    let mut references = Vec::new();
    let mut buffer = Vec::new();
    loop {
        match reader.read_event_into(&mut buffer) {
            Ok(
                quick_xml::events::Event::Start(element) | quick_xml::events::Event::Empty(element),
            ) if element.local_name().as_ref() == "File" => {
                for attribute in element.attributes().flatten() {
                    if attribute.key.local_name().as_ref() == "href" {
                        references.push(attribute.value.into_owned());
                    }
                }
            }
            Ok(quick_xml::events::Event::Eof) => return Ok(references),
            Err(error) => return Err(format!("unreadable descriptor: {error}")),
            Ok(_) => {}
        }
        buffer.clear();
    }
}

impl Core {
    /// The disks an `.ovf` names that are not beside it.
    pub(super) async fn check_ovf(
        &self,
        user: &Principal,
        file: &StoreFile,
        present: &HashMap<(String, String), u64>,
    ) -> Result<Vec<String>, String> {
        let descriptor = self.read_descriptor(user, file).await?;
        let references = ovf_references(&descriptor)?;
        Ok(references
            .into_iter()
            .filter(|href| disk_of(file, href, present).is_none())
            .collect())
    }

    /// An `.ovf`'s bytes, refused past [`MAX_DESCRIPTOR`].
    async fn read_descriptor(&self, user: &Principal, file: &StoreFile) -> Result<Vec<u8>, String> {
        if file.size > MAX_DESCRIPTOR {
            return Err("the descriptor is larger than 4 MiB".into());
        }
        let unreadable = |error: std::io::Error| format!("unreadable: {error}");
        let mut stream = self
            .personal
            .read(user.id, &file.relative)
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

    /// Streams an `.ovf` and every file it names (beside it, as checked by
    /// `check_ovf`) as one tar archive, descriptor first: the OVA it stands for.
    pub(super) async fn package_ovf(
        &self,
        user: &Principal,
        file: &StoreFile,
        present: &HashMap<(String, String), u64>,
    ) -> Result<ByteStream, CoreError> {
        let descriptor = self
            .read_descriptor(user, file)
            .await
            .map_err(CoreError::invalid)?;
        let mut disks = Vec::new();
        for href in ovf_references(&descriptor).map_err(CoreError::invalid)? {
            let (relative, size) = disk_of(file, &href, present)
                .ok_or_else(|| CoreError::invalid(format!("missing disk {href}")))?;
            disks.push((href, relative, size));
        }
        let name = file.name.clone();
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
                for (href, relative, size) in &disks {
                    // Each disk is opened when its turn comes, and must
                    // still have the size the listing gave the header.
                    let stream = runtime.block_on(personal.read(user_id, relative))?;
                    let reader = tokio_util::io::SyncIoBridge::new_with_handle(
                        tokio_util::io::StreamReader::new(stream),
                        runtime.clone(),
                    );
                    let mut header = tar::Header::new_gnu();
                    header.set_size(*size);
                    header.set_mode(0o644);
                    header.set_cksum();
                    archive.append_data(&mut header, href, ExactSize::new(reader, *size))?;
                }
                std::io::Write::flush(&mut archive.into_inner()?)
            })();
            if let Err(error) = written {
                let _ = sender.blocking_send(Err(error));
            }
        });
        Ok(
            futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|item| (item, receiver))
            })
            .boxed(),
        )
    }
}

/// The file an `.ovf`'s reference names, beside the descriptor, with its
/// size: `None` if it is not in the store or leads out of its folder.
fn disk_of(
    file: &StoreFile,
    href: &str,
    present: &HashMap<(String, String), u64>,
) -> Option<(String, u64)> {
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
    let size = *present.get(&(folder.clone(), name.to_owned()))?;
    let relative = if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    };
    Some((relative, size))
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
}
