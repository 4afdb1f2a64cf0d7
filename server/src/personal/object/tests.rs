//! The object-store personal store against `object_store`'s in-memory store.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;

use super::*;
use crate::blob::{Area, Backend};

fn stores() -> (ObjectBlobs, ObjectStores) {
    let blobs = ObjectBlobs::new(Arc::new(InMemory::new()), "depot");
    (blobs.clone(), ObjectStores::new(blobs))
}

fn dav(path: &str) -> DavPath {
    DavPath::new(path).unwrap()
}

fn store_path(path: &str) -> StorePath {
    StorePath::parse(path).unwrap()
}

async fn write(fs: &StoreFs, path: &str, chunks: &[&[u8]], flush: bool) -> FsResult<()> {
    let options = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        ..OpenOptions::default()
    };
    let mut file = fs.open(&dav(path), options).await?;
    for chunk in chunks {
        file.write_bytes(Bytes::copy_from_slice(chunk)).await?;
    }
    if flush {
        file.flush().await?;
    }
    Ok(())
}

async fn read(fs: &StoreFs, path: &str, from: u64) -> Vec<u8> {
    let options = OpenOptions {
        read: true,
        ..OpenOptions::default()
    };
    let mut file = fs.open(&dav(path), options).await.unwrap();
    file.seek(SeekFrom::Start(from)).await.unwrap();
    let mut read = Vec::new();
    loop {
        let chunk = file.read_bytes(3).await.unwrap();
        if chunk.is_empty() {
            return read;
        }
        read.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn files_and_folders_round_trip_with_any_name() {
    let (_, stores) = stores();
    let fs = stores.file_system(7).await.unwrap();
    fs.create_dir(&dav("/100% sure/")).await.unwrap();
    assert_eq!(
        fs.create_dir(&dav("/100% sure/")).await.unwrap_err(),
        FsError::Exists
    );
    assert_eq!(
        fs.create_dir(&dav("/missing/sub/")).await.unwrap_err(),
        FsError::NotFound
    );
    write(
        &fs,
        "/100%25%20sure/%25folder",
        &[b"not ", b"a marker"],
        true,
    )
    .await
    .unwrap();
    assert_eq!(read(&fs, "/100%25%20sure/%25folder", 4).await, b"a marker");
    let listed = stores.list(7, &store_path("100% sure"), 100).await.unwrap();
    let names: Vec<_> = listed.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(names, ["%folder"]);
    assert_eq!(listed[0].size, 12);
    let root = stores.list(7, &store_path(""), 100).await.unwrap();
    assert!(root[0].folder && root[0].name == "100% sure", "{root:?}");
    // Another user sees none of it.
    assert!(stores
        .list(8, &store_path(""), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        stores.list(8, &store_path("100% sure"), 100).await,
        Err(StoreError::NotFound)
    ));
    let files = stores.files(7).await.unwrap().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].relative, "100% sure/%folder");
    assert_eq!(files[0].folder, "100% sure");
    let bytes: Vec<Bytes> = stores
        .read(7, &files[0].relative)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(bytes.concat(), b"not a marker");
}

#[tokio::test]
async fn a_write_replaces_the_file_only_when_complete() {
    let (blobs, stores) = stores();
    let fs = stores.file_system(1).await.unwrap();
    write(&fs, "/a.iso", &[b"old bytes"], true).await.unwrap();
    // Dropped before its flush: the old file stays, nothing is staged.
    write(&fs, "/a.iso", &[b"new"], false).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(read(&fs, "/a.iso", 0).await, b"old bytes");
    assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
    // A file needs its folder; a new file must be new when asked.
    assert_eq!(
        write(&fs, "/none/b.iso", &[b"x"], true).await.unwrap_err(),
        FsError::NotFound
    );
    let create_new = OpenOptions {
        write: true,
        create_new: true,
        ..OpenOptions::default()
    };
    assert_eq!(
        fs.open(&dav("/a.iso"), create_new).await.unwrap_err(),
        FsError::Exists
    );
    // A large file goes up in parts and reads back whole.
    let big: Vec<u8> = (0..(crate::blob::object::PART_SIZE * 2 + 5))
        .map(|index| (index % 251) as u8)
        .collect();
    let chunks: Vec<&[u8]> = big.chunks(1 << 20).collect();
    write(&fs, "/big.iso", &chunks, true).await.unwrap();
    assert_eq!(read(&fs, "/big.iso", 0).await, big);
    assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dead_servers_write_is_aborted_and_the_old_file_kept() {
    let (blobs, stores) = stores();
    let fs = stores.file_system(5).await.unwrap();
    write(&fs, "/a.iso", &[b"old"], true).await.unwrap();
    let options = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        ..OpenOptions::default()
    };
    let mut file = fs.open(&dav("/a.iso"), options).await.unwrap();
    let part = vec![7u8; crate::blob::object::PART_SIZE + 1];
    file.write_bytes(Bytes::from(part)).await.unwrap();
    // Its server dies: nothing runs the writer's clean-up.
    std::mem::forget(file);
    let staging = blobs.stored(Area::Staging).await.unwrap();
    assert_eq!(staging.len(), 1, "{staging:?}");
    assert_eq!(
        blobs
            .discard_stale_uploads(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
    assert_eq!(read(&fs, "/a.iso", 0).await, b"old");
}

#[tokio::test]
async fn a_store_never_opened_is_not_an_empty_one() {
    let (_, stores) = stores();
    assert!(stores.files(9).await.unwrap().is_none());
    stores.file_system(9).await.unwrap();
    assert_eq!(stores.files(9).await.unwrap().unwrap().len(), 0);
    assert!(stores
        .list(9, &store_path(""), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn folders_move_whole_and_go_only_when_empty() {
    let (_, stores) = stores();
    let fs = stores.file_system(3).await.unwrap();
    fs.create_dir(&dav("/cds/")).await.unwrap();
    fs.create_dir(&dav("/cds/old/")).await.unwrap();
    write(&fs, "/cds/old/c.iso", &[b"cd"], true).await.unwrap();
    assert!(matches!(
        stores.delete(3, &store_path("cds")).await,
        Err(StoreError::NotEmpty)
    ));
    assert_eq!(
        fs.rename(&dav("/cds/"), &dav("/cds/old/cds/"))
            .await
            .unwrap_err(),
        FsError::Forbidden
    );
    fs.rename(&dav("/cds/"), &dav("/discs/")).await.unwrap();
    assert!(matches!(
        stores.is_folder(3, &store_path("cds")).await,
        Err(StoreError::NotFound)
    ));
    assert!(!stores
        .is_folder(3, &store_path("discs/old/c.iso"))
        .await
        .unwrap());
    assert!(stores.is_folder(3, &store_path("discs/old")).await.unwrap());
    stores
        .delete(3, &store_path("discs/old/c.iso"))
        .await
        .unwrap();
    // The folder was made on purpose: it stays, empty, until deleted.
    assert!(stores.is_folder(3, &store_path("discs/old")).await.unwrap());
    stores.delete(3, &store_path("discs/old")).await.unwrap();
    stores.delete(3, &store_path("discs")).await.unwrap();
    assert!(stores.files(3).await.unwrap().unwrap().is_empty());
    assert!(stores
        .list(3, &store_path(""), 10)
        .await
        .unwrap()
        .is_empty());
}
