//! Reading a local blob (or an upload's file): a download streams it chunk
//! by chunk, a little ahead of the socket. What is sent to a socket of a
//! published blob is its pages in the page cache, mapped; everything else
//! (an upload's file, which can still be cut back, and what the server reads
//! itself) is read into buffers.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::super::{Blob, ByteStream};
use super::{lost, mapped};

/// Read size for downloads: large enough to keep the socket busy.
const READ_CHUNK: usize = 256 * 1024;

/// Chunks of a download read ahead of the socket.
const READ_AHEAD: usize = 2;

/// Size of a mapped chunk of a published blob: large enough that mapping
/// and unmapping cost little beside sending it.
const MAP_CHUNK: usize = 2 * 1024 * 1024;

/// Bytes of downloads held in buffers at once, across every download
/// (chunks read ahead and waiting for their sockets, mapped ones aside):
/// past them a chunk waits for room rather than allocate. Clients that ask
/// for downloads and take little or nothing hold their chunks as long as
/// they keep the connection; without a cap, a few thousand of them held
/// gigabytes. What the server reads for itself is outside it (see
/// [`Reader::Server`]).
const BUFFERED: usize = 64 << 20;

/// What [`ROOM`] counts in.
const ROOM_UNIT: usize = 64 << 10;

static ROOM: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BUFFERED / ROOM_UNIT);

/// Who reads a range, which decides what its chunks hold.
#[derive(Clone, Copy)]
enum Reader {
    /// A socket (a download): a published blob's chunk is mapped while one
    /// of the [`mapped::MAPPED_CHUNKS`] is free; any other chunk is read
    /// into a buffer within the [`BUFFERED`].
    Socket { mappable: bool },
    /// The server itself (a deployment's copy, a resumable upload read
    /// back): into buffers, outside the budget that clients can fill,
    /// so that those never wait on them. Its readers are few, each bounded
    /// by its own limit (the job workers, the upload places).
    Server,
}

/// What a chunk holds while it lives: one of the mapped chunks, or its
/// room among the [`BUFFERED`] (none for the server's own reads).
pub(super) enum Place {
    Mapped(tokio::sync::SemaphorePermit<'static>),
    Buffered {
        _room: Option<tokio::sync::SemaphorePermit<'static>>,
    },
}

impl Place {
    /// The place of a chunk of `size` bytes for `reader`, once there is one.
    async fn take(reader: Reader, size: usize) -> std::io::Result<Self> {
        let Reader::Socket { mappable } = reader else {
            return Ok(Self::Buffered { _room: None });
        };
        if mappable {
            if let Ok(permit) = mapped::PERMITS.try_acquire() {
                return Ok(Self::Mapped(permit));
            }
        }
        let units = size.div_ceil(ROOM_UNIT).clamp(1, BUFFERED / ROOM_UNIT) as u32;
        let room = ROOM
            .acquire_many(units)
            .await
            .map_err(|_| std::io::Error::other("the downloads' buffers are closed"))?;
        Ok(Self::Buffered { _room: Some(room) })
    }
}

/// An open blob file.
pub(super) struct LocalBlob {
    file: std::fs::File,
    pub(super) length: u64,
    /// A published blob, not written in place: its chunks can be mapped.
    published: bool,
}

impl LocalBlob {
    /// A file that may still change (an upload's): read by copying.
    pub(super) async fn open(path: PathBuf) -> std::io::Result<Self> {
        Self::open_as(path, false).await
    }

    /// A published blob, whose file is written before it is renamed into
    /// place (or linked, from a finished upload), and not in place after (a
    /// removal unlinks it: an open download keeps reading it).
    pub(super) async fn open_published(path: PathBuf) -> std::io::Result<Self> {
        Self::open_as(path, true).await
    }

    async fn open_as(path: PathBuf, published: bool) -> std::io::Result<Self> {
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(path)?;
            let length = file.metadata()?.len();
            Ok(Self {
                file,
                length,
                published,
            })
        })
        .await
        .map_err(lost)?
    }
}

#[async_trait::async_trait]
impl Blob for LocalBlob {
    fn size(&self) -> u64 {
        self.length
    }

    async fn read(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        Ok(read_range(self.file, start, count, Reader::Server))
    }

    async fn send(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        Ok(if self.published {
            map_range(self.file, start, count)
        } else {
            read_range(self.file, start, count, Reader::Socket { mappable: false })
        })
    }
}

/// Streams `count` bytes of a published blob from `start` as its pages
/// in the page cache, mapped [`MAP_CHUNK`] at a time (see [`chunked`] and
/// [`mapped`]): the server's connections have the kernel send them from the
/// file, as nginx's `sendfile` does, rather than copy them (a read into a
/// buffer was one more copy of every byte, most of what separated the two).
/// Past [`mapped::MAPPED_CHUNKS`], a chunk is read into a buffer. Only for
/// bytes the server never reads itself (see [`Blob::send`]).
fn map_range(file: std::fs::File, start: u64, count: u64) -> ByteStream {
    let reader = Reader::Socket { mappable: true };
    chunked(file, start, count, MAP_CHUNK, reader, map_chunk)
}

/// The `size` bytes of `file` at `offset`, mapped; read into a buffer when
/// [`mapped::MAPPED_CHUNKS`] were mapped already (its `place` is room in
/// buffers then).
fn map_chunk(
    file: &Arc<std::fs::File>,
    offset: u64,
    size: usize,
    place: Place,
) -> std::io::Result<Bytes> {
    // A file found shorter than the range is an error, as a read's end of
    // file is: the pages past its end are not there to send.
    if file.metadata()?.len() < offset + size as u64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file ended before the range asked for",
        ));
    }
    match place {
        Place::Mapped(permit) => mapped::map(file, offset, size, permit),
        Place::Buffered { .. } => {
            let buffer = read_chunk(file, offset, size, Vec::with_capacity(size))?;
            Ok(Bytes::from_owner(Reused {
                buffer,
                buffers: None,
                _place: place,
            }))
        }
    }
}

/// Streams `count` bytes of `file` from `start` in chunks of `chunk` bytes,
/// each made by `make(file, offset, size, place)` on a blocking thread once
/// it has its [`Place`] for `reader`, up to
/// [`READ_AHEAD`] chunks ahead of the socket, so the disk and the network
/// work side by side. No thread is held while the client is slow to take
/// the bytes, only for each chunk; the chunks stop when the stream is
/// dropped (the client went away).
fn chunked<F>(
    file: std::fs::File,
    start: u64,
    count: u64,
    chunk: usize,
    reader: Reader,
    make: F,
) -> ByteStream
where
    F: Fn(&Arc<std::fs::File>, u64, usize, Place) -> std::io::Result<Bytes>
        + Clone
        + Send
        + 'static,
{
    let file = Arc::new(file);
    advise_sequential(&file, start, count);
    let offsets = (0..count.div_ceil(chunk as u64)).map(move |index| {
        let offset = start + index * chunk as u64;
        (offset, (start + count - offset).min(chunk as u64) as usize)
    });
    futures_util::stream::iter(offsets)
        .map(move |(offset, size)| {
            let (file, make) = (file.clone(), make.clone());
            async move {
                let place = Place::take(reader, size).await?;
                tokio::task::spawn_blocking(move || make(&file, offset, size, place))
                    .await
                    .map_err(lost)?
            }
        })
        .buffered(READ_AHEAD)
        .boxed()
}

/// Only a hint, for this download's own open file: a larger read-ahead
/// window (Linux applies it to the whole file), for a download longer than
/// what is read ahead of the socket anyway.
fn advise_sequential(file: &std::fs::File, start: u64, count: u64) {
    if count > (READ_AHEAD * READ_CHUNK) as u64 {
        let range = std::num::NonZeroU64::new(count);
        let _ = rustix::fs::fadvise(file, start, range, rustix::fs::Advice::Sequential);
    }
}

/// Streams `count` bytes of `file` from `start`, read [`READ_CHUNK`] at a
/// time (see [`chunked`]). Each chunk is read straight into the buffer that
/// is sent (tokio's file would read into a buffer of its own and copy out of
/// it), and the buffers are reused once sent: a fresh one per chunk costs the
/// kernel's zeroing of its pages, more than the read itself.
fn read_range(file: std::fs::File, start: u64, count: u64, reader: Reader) -> ByteStream {
    let buffers = Buffers::default();
    let read = move |file: &Arc<std::fs::File>, offset, size, place| {
        let buffer = read_chunk(file, offset, size, buffers.take(size))?;
        Ok(Bytes::from_owner(Reused {
            buffer,
            buffers: Some(buffers.clone()),
            _place: place,
        }))
    };
    chunked(file, start, count, READ_CHUNK, reader, read)
}

/// Fills `buffer` (empty, its capacity `size`: a read fills all of it and
/// no more) with the `size` bytes of `file` at `offset`, without zeroing it
/// first; a file that ends before them is an error, never a short chunk.
fn read_chunk(
    file: &std::fs::File,
    offset: u64,
    size: usize,
    mut buffer: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    while buffer.len() < size {
        let at = offset + buffer.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buffer), at) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file ended before the range asked for",
                ))
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    // Never bytes past the range, whatever the buffer could hold.
    buffer.truncate(size);
    Ok(buffer)
}

/// The read buffers of one download, handed back once their bytes are sent.
#[derive(Clone, Default)]
struct Buffers(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Buffers {
    /// An empty buffer whose capacity is `size`: a whole chunk's comes from
    /// those handed back; the last, shorter chunk of a range gets one of its
    /// own size, so that no read goes past the range.
    fn take(&self, size: usize) -> Vec<u8> {
        let spare = (size == READ_CHUNK)
            .then(|| self.0.lock().ok().and_then(|mut spare| spare.pop()))
            .flatten();
        spare.unwrap_or_else(|| Vec::with_capacity(size))
    }

    fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() != READ_CHUNK {
            return;
        }
        buffer.clear();
        if let Ok(mut spare) = self.0.lock() {
            // As many as can be in flight; more would only hold memory.
            if spare.len() < READ_AHEAD {
                spare.push(buffer);
            }
        }
    }
}

/// A chunk's bytes in a buffer, which goes back to its download (if it
/// reuses them) when sent, and its room among the [`BUFFERED`] with it.
struct Reused {
    buffer: Vec<u8>,
    buffers: Option<Buffers>,
    _place: Place,
}

impl AsRef<[u8]> for Reused {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        if let Some(buffers) = &self.buffers {
            buffers.give(std::mem::take(&mut self.buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use mapped::MAPPING_TESTS;

    async fn collect(stream: ByteStream) -> std::io::Result<Vec<u8>> {
        stream
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
    }

    /// A range of the file at `path`: read into buffers, as an upload's
    /// file and what the server reads are, and sent from mapped pages.
    async fn both_ways(path: &std::path::Path, start: u64, count: u64) -> [ByteStream; 2] {
        let read = LocalBlob::open(path.to_owned()).await.unwrap();
        let sent = LocalBlob::open_published(path.to_owned()).await.unwrap();
        assert_eq!(read.size(), sent.size());
        [
            Box::new(read).read(start, count).await.unwrap(),
            Box::new(sent).send(start, count).await.unwrap(),
        ]
    }

    /// A download is the file's bytes in order, whole or any range, across
    /// the chunks read or mapped ahead, read or mapped.
    #[tokio::test]
    async fn a_range_reads_the_files_bytes_across_chunks() {
        let _alone = MAPPING_TESTS.lock().await;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("blob");
        let bytes: Vec<u8> = (0..MAP_CHUNK * 5 / 2 + 7)
            .map(|n| (n % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let ranges = [
            (0, bytes.len()),
            (READ_CHUNK - 3, READ_CHUNK + 10),
            (MAP_CHUNK - 4097, MAP_CHUNK + 8193),
            (bytes.len() - 1, 1),
            (5, 0),
        ];
        for (start, count) in ranges {
            let streams = both_ways(&path, start as u64, count as u64).await;
            for (way, stream) in ["read", "sent"].into_iter().zip(streams) {
                let read = collect(stream).await.unwrap();
                assert!(read == bytes[start..start + count], "{way} {start}+{count}");
            }
        }
        assert!(all_unmapped().await);
    }

    /// A file cut short under an open download ends it with an error, so
    /// the client sees a broken transfer, not a short file that looks whole
    /// (and no page past the file's end is mapped).
    #[tokio::test]
    async fn a_file_cut_short_under_a_download_is_an_error() {
        let _alone = MAPPING_TESTS.lock().await;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("blob");
        for chunk in [READ_CHUNK, MAP_CHUNK] {
            std::fs::write(&path, vec![7u8; chunk * 3]).unwrap();
            let streams = both_ways(&path, 0, chunk as u64 * 3).await;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(chunk as u64 + 1)
                .unwrap();
            for (way, stream) in ["read", "sent"].into_iter().zip(streams) {
                let error = collect(stream).await.unwrap_err();
                assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{way}");
            }
        }
    }

    /// A mapped chunk holds one of the [`mapped::MAPPED_CHUNKS`] until it is sent
    /// (dropped); once they are all taken, downloads go on, read into
    /// buffers, rather than waiting or failing.
    #[tokio::test]
    async fn mapped_chunks_are_capped_and_downloads_go_on_past_the_cap() {
        let _alone = MAPPING_TESTS.lock().await;
        assert!(all_unmapped().await);
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("blob");
        let bytes: Vec<u8> = (0..MAP_CHUNK * 3).map(|n| (n % 253) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let sent = LocalBlob::open_published(path.clone()).await.unwrap();
        let mut stream = Box::new(sent).send(0, bytes.len() as u64).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first == bytes[..MAP_CHUNK]);
        // The chunk in hand (and, soon, the one mapped ahead of it).
        assert!(mapped::PERMITS.available_permits() < mapped::MAPPED_CHUNKS);
        drop((first, stream));
        assert!(all_unmapped().await);

        let all = mapped::PERMITS
            .try_acquire_many(mapped::MAPPED_CHUNKS as u32)
            .unwrap();
        let sent = LocalBlob::open_published(path.clone()).await.unwrap();
        let stream = Box::new(sent).send(0, bytes.len() as u64).await.unwrap();
        assert!(collect(stream).await.unwrap() == bytes);
        drop(all);
        assert!(all_unmapped().await);
    }

    /// A chunk read into a buffer for a socket holds room among the
    /// [`BUFFERED`] until it is sent: with no room left a download waits (it
    /// neither allocates nor fails), a published blob's past the mapped
    /// chunks too, and goes on once there is room, which all comes back
    /// afterwards. What the server reads for itself does not wait.
    #[tokio::test]
    async fn buffered_chunks_for_sockets_wait_for_room() {
        let _alone = MAPPING_TESTS.lock().await;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("blob");
        let bytes: Vec<u8> = (0..READ_CHUNK * 3 + 5).map(|n| (n % 241) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let room = (BUFFERED / ROOM_UNIT) as u32;
        let all_room = ROOM.acquire_many(room).await.unwrap();
        let maps = mapped::PERMITS
            .try_acquire_many(mapped::MAPPED_CHUNKS as u32)
            .unwrap();
        let length = bytes.len() as u64;
        let [read, mut published] = both_ways(&path, 0, length).await;
        let unpublished = LocalBlob::open(path.clone()).await.unwrap();
        let mut unpublished = Box::new(unpublished).send(0, length).await.unwrap();
        assert!(
            collect(read).await.unwrap() == bytes,
            "the server's own read"
        );
        let a_while = std::time::Duration::from_millis(300);
        assert!(tokio::time::timeout(a_while, published.next())
            .await
            .is_err());
        assert!(tokio::time::timeout(a_while, unpublished.next())
            .await
            .is_err());
        drop(all_room);
        assert!(collect(published).await.unwrap() == bytes);
        assert!(collect(unpublished).await.unwrap() == bytes);
        drop(maps);
        assert!(all_unmapped().await);
        for _ in 0..1_000 {
            if ROOM.available_permits() == room as usize {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("room still held: {} free", ROOM.available_permits());
    }

    /// Whether every mapped chunk is let go of within a while: a chunk
    /// mapped ahead of a stream that was dropped is let go of when its
    /// blocking task ends.
    async fn all_unmapped() -> bool {
        for _ in 0..10_000 {
            if mapped::PERMITS.available_permits() == mapped::MAPPED_CHUNKS {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        false
    }
}
