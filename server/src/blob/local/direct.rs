//! Writing an upload's file around the page cache (`O_DIRECT`). Through the
//! page cache, every byte was copied into a page the kernel allocated,
//! charged and marked dirty, then written back by a kernel thread and
//! flushed at the fsync: a fifth of the server's CPU for an upload, on the
//! two cores the client, the hash and the parser share. Here the writer
//! thread copies the bytes into a few aligned buffers and a thread of its
//! own writes each full one straight to the disk while the next fills, so
//! the disk works while the bytes arrive and the fsync at the end finds
//! almost nothing to write. The bytes past the last whole block go through
//! the page cache, since direct writes take whole blocks only.

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use rustix::fs::OFlags;

/// What direct writes' offsets, lengths and buffers are multiples of: the
/// largest logical block size of a disk.
const BLOCK: usize = 4096;

/// The size of one direct write: large enough that the disk streams (1,
/// 4 and 8 MiB wrote as fast here), small enough that the last one, written
/// after the last byte arrives, holds up the answer little.
const BUFFER: usize = 1 << 20;

/// Buffers of one file: one filling, two waiting, one being written.
const BUFFERS: usize = 4;

/// Files written directly at once, at most: each holds up to [`BUFFERS`]
/// buffers (4 MiB) and a thread while its upload lasts, a slow one too;
/// past them, files are written through the page cache as before.
const AT_ONCE: usize = 8;

static WRITING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// One file's direct writes, and its place among the [`AT_ONCE`].
pub(super) struct Direct {
    _place: tokio::sync::SemaphorePermit<'static>,
}

impl Direct {
    /// Direct writes for `file`, written from `start`, if `start` is a
    /// block's, fewer than [`AT_ONCE`] files are written so, and the
    /// filesystem takes them (see [`turn_on`]).
    pub(super) fn begin(file: &std::fs::File, start: u64) -> Option<Self> {
        if !start.is_multiple_of(BLOCK as u64) {
            return None;
        }
        let place = WRITING.try_acquire().ok()?;
        turn_on(file).then_some(Self { _place: place })
    }

    /// See [`write`].
    pub(super) fn write(
        self,
        file: &std::fs::File,
        start: u64,
        receiver: &mut tokio::sync::mpsc::Receiver<Bytes>,
    ) -> std::io::Result<u64> {
        write(file, start, receiver)
    }
}

/// Turns direct I/O on for `file` if its filesystem takes it (tmpfs, for
/// one, may not): whether it did.
fn turn_on(file: &std::fs::File) -> bool {
    rustix::fs::fcntl_getfl(file)
        .and_then(|flags| rustix::fs::fcntl_setfl(file, flags | OFlags::DIRECT))
        .is_ok()
}

fn turn_off(file: &std::fs::File) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    Ok(rustix::fs::fcntl_setfl(file, flags - OFlags::DIRECT)?)
}

/// A buffer for direct writes: [`BUFFER`] bytes from a page boundary,
/// inside an allocation a page longer.
struct Aligned {
    memory: Vec<u8>,
    skip: usize,
}

impl Aligned {
    /// Zeroed by the allocator's fresh mapping: no page is touched before
    /// the bytes are copied in.
    fn new() -> Self {
        let memory = vec![0u8; BUFFER + BLOCK];
        let skip = memory.as_ptr().align_offset(BLOCK).min(BLOCK);
        Self { memory, skip }
    }

    fn bytes(&self) -> &[u8] {
        &self.memory[self.skip..self.skip + BUFFER]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.skip..self.skip + BUFFER]
    }
}

/// A buffer on its way to the disk: its first `length` bytes, at `offset`.
struct Full {
    buffer: Aligned,
    length: usize,
    offset: u64,
}

/// Writes what arrives through `receiver` to `file` from `start` (a
/// multiple of [`BLOCK`]), direct I/O on (see [`turn_on`]): whole buffers
/// on a thread of their own, the last whole blocks after them, then the
/// bytes past those through the page cache, direct I/O off again. Should
/// the filesystem refuse a direct write after all (EINVAL: some network
/// and FUSE filesystems take the flag, not the writes), that buffer and
/// the rest go through the page cache. Answers where the file's bytes end.
/// The caller fsyncs.
fn write(
    file: &std::fs::File,
    start: u64,
    receiver: &mut tokio::sync::mpsc::Receiver<Bytes>,
) -> std::io::Result<u64> {
    std::thread::scope(|scope| {
        let (to_disk, full) = std::sync::mpsc::sync_channel::<Full>(BUFFERS - 2);
        let (give_back, written) = std::sync::mpsc::channel::<Aligned>();
        let disk = std::thread::Builder::new()
            .name("depot-disk".into())
            .spawn_scoped(scope, move || -> std::io::Result<()> {
                for Full {
                    buffer,
                    length,
                    offset,
                } in full
                {
                    let bytes = &buffer.bytes()[..length];
                    match file.write_all_at(bytes, offset) {
                        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                            turn_off(file)?;
                            file.write_all_at(bytes, offset)?;
                        }
                        written => written?,
                    }
                    // The filling side may have stopped: the buffer is dropped.
                    let _ = give_back.send(buffer);
                }
                Ok(())
            })?;

        let mut spare = BUFFERS - 1;
        let mut current = Aligned::new();
        let mut filled = 0;
        let mut offset = start;
        let mut filling = || -> Result<(), Stopped> {
            while let Some(chunk) = receiver.blocking_recv() {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let taken = rest.len().min(BUFFER - filled);
                    current.bytes_mut()[filled..filled + taken].copy_from_slice(&rest[..taken]);
                    filled += taken;
                    rest = &rest[taken..];
                    if filled == BUFFER {
                        let next = if spare > 0 {
                            spare -= 1;
                            Aligned::new()
                        } else {
                            written.recv().map_err(|_| Stopped)?
                        };
                        let buffer = std::mem::replace(&mut current, next);
                        to_disk
                            .send(Full {
                                buffer,
                                length: BUFFER,
                                offset,
                            })
                            .map_err(|_| Stopped)?;
                        offset += BUFFER as u64;
                        filled = 0;
                    }
                }
            }
            Ok(())
        };
        let filled_all = filling();
        // The last whole blocks go straight to the disk too; what is left
        // is less than a block.
        let whole = filled / BLOCK * BLOCK;
        let tail = current.bytes()[whole..filled].to_vec();
        if filled_all.is_ok() && whole > 0 {
            let last = Full {
                buffer: current,
                length: whole,
                offset,
            };
            // Should the disk's thread have stopped, its error is below.
            let _ = to_disk.send(last);
        }
        drop(to_disk);
        disk.join()
            .map_err(|_| std::io::Error::other("the disk's writer panicked"))??;
        if filled_all.is_err() {
            return Err(std::io::Error::other("the disk's writer stopped"));
        }
        turn_off(file)?;
        let end = offset + whole as u64;
        file.write_all_at(&tail, end)?;
        Ok(end + tail.len() as u64)
    })
}

/// The disk's thread stopped (its error is what it answers when joined).
struct Stopped;

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `chunks` through a channel as an upload's writer receives them.
    fn received(chunks: Vec<Bytes>) -> tokio::sync::mpsc::Receiver<Bytes> {
        let (sender, receiver) = tokio::sync::mpsc::channel(chunks.len().max(1));
        for chunk in chunks {
            sender.try_send(chunk).unwrap();
        }
        receiver
    }

    /// Uneven chunks of `total` bytes, some of them empty.
    fn chunks_of(total: usize) -> (Vec<u8>, Vec<Bytes>) {
        let bytes: Vec<u8> = (0..total).map(|n| (n * 31 % 253) as u8).collect();
        let mut chunks = Vec::new();
        let mut at = 0;
        for size in [0, 1, 4095, 65_536, 3 << 20, 0, 12_345].iter().cycle() {
            if at == total {
                break;
            }
            let end = (at + size).min(total);
            chunks.push(Bytes::copy_from_slice(&bytes[at..end]));
            at = end;
        }
        (bytes, chunks)
    }

    /// Every byte lands in order, whatever the chunks and however many
    /// buffers they fill, from the file's start or after what it held up to
    /// a block's end, and the end answered is the file's; the whole blocks
    /// bypassed the page cache.
    #[test]
    fn every_byte_lands_in_order_around_the_page_cache() {
        let folder = tempfile::tempdir().unwrap();
        for (kept, total) in [
            (0, 0),
            (0, 100),
            (0, BUFFER),
            (0, 3 * BUFFER + BLOCK * 5 + 77),
            (BLOCK * 2, BUFFER * 2 + 9),
        ] {
            let path = folder.path().join(format!("{kept}-{total}"));
            std::fs::write(&path, vec![7u8; kept]).unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            assert!(turn_on(&file), "this filesystem takes direct writes");
            let (bytes, chunks) = chunks_of(total);
            let end = write(&file, kept as u64, &mut received(chunks)).unwrap();
            file.sync_data().unwrap();
            assert_eq!(end, (kept + total) as u64);
            // Asked before the file is read back, which caches it.
            if total >= BUFFER {
                assert!(
                    !cached(&path, kept, BUFFER),
                    "a direct write went through the page cache"
                );
            }
            let mut expected = vec![7u8; kept];
            expected.extend(&bytes);
            assert!(std::fs::read(&path).unwrap() == expected, "{kept} {total}");
        }
    }

    /// Whether the page cache holds every page of `length` bytes of the
    /// file at `path` from `offset`.
    fn cached(path: &std::path::Path, offset: usize, length: usize) -> bool {
        let file = std::fs::File::open(path).unwrap();
        // SAFETY: a mapping of a file no one changes, only asked about.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset as u64)
                .len(length)
                .map(&file)
                .unwrap()
        };
        let mut pages = vec![0u8; length.div_ceil(BLOCK)];
        // SAFETY: `map` is a live mapping of `length` bytes from a page
        // boundary; `pages` has a byte for each of its pages.
        let answer = unsafe {
            libc::mincore(
                map.as_ptr() as *mut libc::c_void,
                length,
                pages.as_mut_ptr(),
            )
        };
        assert_eq!(answer, 0);
        pages.iter().all(|page| page & 1 == 1)
    }

    /// A disk write that fails fails the whole write with its error, and
    /// the writer stops taking chunks once it needs a buffer back (it does
    /// not wait for the upload to end).
    #[test]
    fn a_failed_disk_write_is_the_answer() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // Opened to read only: every write fails (EBADF).
        let file = std::fs::File::open(&path).unwrap();
        assert!(turn_on(&file));
        // More than every buffer holds: once they are all full, the writer
        // needs one back from the disk's thread, which has stopped.
        let (_, chunks) = chunks_of((BUFFERS + 1) * BUFFER + 100);
        let (sender, mut receiver) = tokio::sync::mpsc::channel(chunks.len());
        for chunk in chunks {
            sender.try_send(chunk).unwrap();
        }
        // The sender is kept open: had the writer waited for the end of the
        // chunks, it would hang here.
        let error = write(&file, 0, &mut receiver).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF), "{error}");
        drop(sender);
    }

    /// Past [`AT_ONCE`] files written directly, or from within a block,
    /// a file is written through the page cache.
    #[test]
    fn direct_writes_are_capped_and_start_at_a_block() {
        let folder = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(folder.path().join("file")).unwrap();
        assert!(Direct::begin(&file, 100).is_none());
        let mut all = Vec::new();
        while let Ok(place) = WRITING.try_acquire() {
            all.push(place);
        }
        assert!(Direct::begin(&file, 0).is_none());
        drop(all);
        assert!(Direct::begin(&file, BLOCK as u64).is_some());
    }

    /// A direct write the filesystem refuses (here, from within a block)
    /// goes through the page cache, and every byte lands all the same.
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("file");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(turn_on(&file));
        let (bytes, chunks) = chunks_of(2 * BUFFER + 3);
        let end = write(&file, 10, &mut received(chunks)).unwrap();
        assert_eq!(end, 10 + bytes.len() as u64);
        let mut expected = b"0123456789".to_vec();
        expected.extend(&bytes);
        assert!(std::fs::read(&path).unwrap() == expected);
    }
}
