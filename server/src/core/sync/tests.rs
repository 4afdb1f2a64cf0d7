//! The sync's own cases.

use super::*;

#[test]
fn task_ids_look_like_uuids() {
    let id = task_id();
    assert_eq!(id.len(), 36);
    assert_eq!(id.as_bytes()[14], b'4');
}

#[test]
fn each_kind_takes_its_files() {
    assert!(SyncKind::Vm.wants("a.OVA") && SyncKind::Vm.wants("b.ovf"));
    assert!(!SyncKind::Vm.wants("c.vmdk") && !SyncKind::Vm.wants("d.iso"));
    assert!(SyncKind::Iso.wants("x.iso") && !SyncKind::Iso.wants("x.ova"));
}

#[tokio::test]
async fn a_store_files_failure_is_told_without_the_stores_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let stores = crate::personal::local::LocalStores::new(dir.path().join("personal"));
    let Err(error) = read_store_file(&stores, 7, "gone/disk.iso").await else {
        panic!("a file that is not there was read");
    };
    assert_eq!(error.to_string(), "the file changed or could not be read");
}

/// What `as_listed` lets through of `chunks` listed at `size` bytes.
async fn read_as_listed(chunks: &[&'static [u8]], size: u64) -> std::io::Result<Vec<u8>> {
    use futures_util::{StreamExt, TryStreamExt};
    let chunks: Vec<_> = chunks
        .iter()
        .map(|chunk| Ok(bytes::Bytes::from_static(chunk)))
        .collect();
    let stream = futures_util::stream::iter(chunks).boxed();
    let read: Vec<bytes::Bytes> = as_listed(stream, size).try_collect().await?;
    Ok(read.concat())
}

#[tokio::test]
async fn a_copy_is_the_file_as_listed_or_nothing() {
    assert_eq!(read_as_listed(&[b"abc", b"de"], 5).await.unwrap(), b"abcde");
    assert_eq!(read_as_listed(&[], 0).await.unwrap(), b"");
    // Grown since it was listed (written over, larger), or shrunk.
    let grown: [&'static [u8]; 2] = [b"abc", b"def"];
    let shrunk: [&'static [u8]; 1] = [b"abc"];
    for chunks in [&grown[..], &shrunk[..]] {
        let size = 5;
        let error = read_as_listed(chunks, size).await.unwrap_err();
        assert_eq!(error.to_string(), "the file changed while it was copied");
    }
}
