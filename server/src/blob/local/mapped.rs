//! Chunks of published blobs mapped to be sent, and where each one's bytes
//! are in which file. A download's body is a stream of `Bytes`, the only
//! form hyper takes; a chunk's `Bytes` are its file's pages, mapped but not
//! faulted in. The server's connections ([`crate::serve`]) look each slice
//! they are asked to write up here and, for a mapped chunk's, have the
//! kernel send the file's range (`sendfile`) as nginx does: no page of it is
//! mapped into the process's page tables, nor copied to the socket. What
//! else reads the bytes (a test's client in the same process) reads the
//! mapping, which faults the same bytes in. The server speaks HTTP/1.1
//! only: HTTP/2 would copy the start of every frame out of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Chunks mapped at once across every download (2 GiB of the page cache at
/// [`super::reading`]'s 2 MiB, whose clean pages the kernel can still take
/// back under pressure): beyond them a chunk is read into a buffer instead,
/// within the downloads' budget, so that many slow clients cannot hold the
/// process's mappings (65,530 at most by default) without end. A slow
/// client holds three chunks: a thousand chunks is three hundred of them
/// before any download waits for room.
pub(super) const MAPPED_CHUNKS: usize = 1024;

pub(super) static PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAPPED_CHUNKS);

/// Every mapped chunk by the address of its first byte.
static CHUNKS: Mutex<BTreeMap<usize, Place>> = Mutex::new(BTreeMap::new());

/// How many chunks [`CHUNKS`] holds: a write that no download is under
/// looks nothing up.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Where a mapped chunk's bytes are.
struct Place {
    len: usize,
    file: Arc<std::fs::File>,
    offset: u64,
}

/// The file a slice's bytes are in, and where.
pub struct FileRange {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
}

/// Where the bytes of `slice` are in a published blob's file, if the whole
/// of it lies in a chunk mapped to be sent. The chunk lives at least as long
/// as the borrow of `slice`, so its file is open and its bytes unchanged
/// while the answer is used with it.
pub fn file_range(slice: &[u8]) -> Option<FileRange> {
    if slice.is_empty() || LIVE.load(Ordering::Acquire) == 0 {
        return None;
    }
    let start = slice.as_ptr() as usize;
    let chunks = CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
    let (&base, place) = chunks.range(..=start).next_back()?;
    let within = start - base;
    (within + slice.len() <= place.len).then(|| FileRange {
        file: place.file.clone(),
        offset: place.offset + within as u64,
    })
}

/// The `size` bytes of `file` at `offset` (a published blob's, which is
/// never written in place), mapped read-only, holding `permit` (one of the
/// [`MAPPED_CHUNKS`]) while they live. Their pages are read from the disk
/// now, on the caller's blocking thread, if they are not all in the page
/// cache, so that sending them seldom waits for the disk on the runtime's
/// threads (only if the kernel drops them again before they are sent); a
/// chunk the page cache holds already is not touched.
pub(super) fn map(
    file: &Arc<std::fs::File>,
    offset: u64,
    size: usize,
    permit: tokio::sync::SemaphorePermit<'static>,
) -> std::io::Result<Bytes> {
    let mut map = map_file(file, offset, size, false)?;
    // MADV_POPULATE_READ is Linux 5.14's; before it, the pages are read in
    // as the mapping is made again (MAP_POPULATE).
    if !in_page_cache(&map) && map.advise(memmap2::Advice::PopulateRead).is_err() {
        drop(map);
        map = map_file(file, offset, size, true)?;
    }
    let start = map.as_ptr() as usize;
    let place = Place {
        len: size,
        file: file.clone(),
        offset,
    };
    CHUNKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(start, place);
    LIVE.fetch_add(1, Ordering::Release);
    Ok(Bytes::from_owner(Mapped {
        map,
        _permit: permit,
    }))
}

/// `size` bytes of `file` from `offset`, mapped read-only, their pages in
/// the process's page tables if `populate`.
fn map_file(
    file: &std::fs::File,
    offset: u64,
    size: usize,
    populate: bool,
) -> std::io::Result<memmap2::Mmap> {
    let mut options = memmap2::MmapOptions::new();
    options.offset(offset).len(size);
    if populate {
        options.populate();
    }
    // SAFETY: a read-only mapping of a published blob, whose bytes do not
    // change (it is not written in place), for bytes the server's own code
    // never reads (`Blob::send`): its connections (HTTP/1.1 only) have the
    // kernel send them from the file. The caller has checked that the file
    // holds the range; should a page become unreadable all the same (the
    // file cut short since, a failing disk), `sendfile` fails and the
    // download ends with an error. Only a read in user space would be
    // killed by SIGBUS, as it was before downloads were sent from files.
    unsafe { options.map(file) }
}

/// Whether every page of `map` is in the page cache (`mincore`); false if
/// the kernel cannot tell.
fn in_page_cache(map: &memmap2::Mmap) -> bool {
    let page = rustix::param::page_size();
    // A mapping from an offset within a page starts that far into its
    // first page; `mincore` takes the page's address.
    let start = map.as_ptr() as usize;
    let first_page = start & !(page - 1);
    let length = map.len() + (start - first_page);
    let mut pages = vec![0u8; length.div_ceil(page)];
    // SAFETY: the pages from `first_page` for `length` bytes are all pages
    // of the live mapping `map`, and `pages` has one byte for each of them.
    let answer =
        unsafe { libc::mincore(first_page as *mut libc::c_void, length, pages.as_mut_ptr()) };
    answer == 0 && pages.iter().all(|page| page & 1 == 1)
}

/// A mapped chunk, and its place among the [`MAPPED_CHUNKS`].
struct Mapped {
    map: memmap2::Mmap,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    /// Forgets where the chunk is before it is unmapped (its fields drop
    /// after this): no write can find an address that is no longer it.
    fn drop(&mut self) {
        let start = self.map.as_ptr() as usize;
        let mut chunks = CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
        if chunks.remove(&start).is_some() {
            LIVE.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The tests that map chunks or count [`PERMITS`], one at a time: a test
/// that takes every permit would leave the others none.
#[cfg(test)]
pub(crate) static MAPPING_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, Arc<std::fs::File>) {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("blob");
        std::fs::write(&path, bytes).unwrap();
        (folder, Arc::new(std::fs::File::open(path).unwrap()))
    }

    /// A slice of a mapped chunk is found in its file at the right offset,
    /// whole or from any point; a copy of its bytes, an empty slice and a
    /// chunk no longer mapped are not.
    #[test]
    fn a_mapped_chunks_slices_are_found_in_its_file() {
        let _alone = MAPPING_TESTS.blocking_lock();
        let page = rustix::param::page_size();
        let bytes: Vec<u8> = (0..page * 8).map(|n| (n % 251) as u8).collect();
        let (_folder, file) = file_of(&bytes);
        let permit = PERMITS.try_acquire().unwrap();
        let chunk = map(&file, page as u64 * 2, page * 3, permit).unwrap();
        assert!(chunk[..] == bytes[page * 2..page * 5]);
        for (from, to) in [(0, page * 3), (17, page + 5), (page * 3 - 1, page * 3)] {
            let found = file_range(&chunk[from..to]).expect("a mapped slice");
            assert!(Arc::ptr_eq(&found.file, &file));
            assert_eq!(found.offset, (page * 2 + from) as u64);
        }
        let copy = chunk.to_vec();
        assert!(file_range(&copy).is_none(), "a copy of the bytes");
        assert!(file_range(&chunk[5..5]).is_none(), "an empty slice");
        let address = chunk.as_ptr() as usize;
        drop(chunk);
        let chunks = CHUNKS.lock().unwrap();
        assert!(!chunks.contains_key(&address), "an unmapped chunk");
    }

    /// A chunk whose pages are not in the page cache is read in when it
    /// is mapped (on the blocking thread that maps it), not when it is sent.
    #[test]
    fn a_chunk_not_in_the_page_cache_is_read_in_when_mapped() {
        let _alone = MAPPING_TESTS.blocking_lock();
        let page = rustix::param::page_size();
        let (_folder, file) = file_of(&vec![9u8; page * 64]);
        // Dropped from the page cache (the file is clean: it was closed
        // after writing, and the kernel writes it out first on fdatasync).
        file.sync_data().unwrap();
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let probe = unsafe {
            memmap2::MmapOptions::new()
                .len(page * 64)
                .map(&*file)
                .unwrap()
        };
        assert!(
            !in_page_cache(&probe),
            "the file was dropped from the cache"
        );
        let chunk = map(&file, 0, page * 64, PERMITS.try_acquire().unwrap()).unwrap();
        assert!(in_page_cache(&probe));
        drop(chunk);
    }

    /// A chunk from an offset within a page (a range's) is seen in the
    /// page cache as a whole chunk is.
    #[test]
    fn a_chunk_from_within_a_page_is_seen_in_the_page_cache() {
        let page = rustix::param::page_size();
        let (_folder, file) = file_of(&vec![3u8; page * 8]);
        for offset in [0, 17, page + 1, page * 3 - 1] {
            let map = map_file(&file, offset as u64, page * 4, false).unwrap();
            assert!(in_page_cache(&map), "from {offset}");
        }
    }
}
