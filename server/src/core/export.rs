//! Writing a deployed file under the export root without ever following a
//! link: every folder below the root is opened with `O_NOFOLLOW` relative to
//! the one above it, the file is written under a fresh name with `O_EXCL`,
//! then renamed into place inside the same opened folder. A symlink planted
//! anywhere below the root is refused, not followed, and nothing outside
//! the root can be reached however the folders change meanwhile.

use std::io::{Error, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rand::RngCore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// How the name a copy is written under ends, until it is renamed into
/// place; no deployed file's name ends so.
pub const PARTIAL_SUFFIX: &str = ".depot-partial";

/// What stands at a deployment's target now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Missing,
    File,
    /// A folder, a link, a device: never replaced.
    Other,
}

/// Opens `relative` below `root`, one folder at a time, refusing links.
fn open_folder(root: &Path, relative: &Path) -> std::io::Result<OwnedFd> {
    let folder_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut folder = rustix::fs::open(root, folder_flags, Mode::empty())?;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not a plain folder path",
            ));
        };
        folder = rustix::fs::openat(
            &folder,
            name,
            folder_flags | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => Error::new(
                ErrorKind::InvalidInput,
                "a link or a file stands where a folder should be",
            ),
            other => other.into(),
        })?;
    }
    Ok(folder)
}

/// What stands at `name` in `relative` below `root` (links not followed).
pub fn target(root: &Path, relative: &Path, name: &str) -> std::io::Result<Target> {
    let folder = open_folder(root, relative)?;
    match rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
            Ok(Target::File)
        }
        Ok(_) => Ok(Target::Other),
        Err(rustix::io::Errno::NOENT) => Ok(Target::Missing),
        Err(errno) => Err(errno.into()),
    }
}

/// Copies `source` to `name` in `relative` below `root`: written under a
/// temporary name, fsynced, renamed into place. Answers the bytes written.
pub fn write(
    root: &Path,
    relative: &Path,
    name: &str,
    source: impl std::io::Read,
) -> std::io::Result<u64> {
    // Large reads: the source may be a stream from an object store.
    let mut source = std::io::BufReader::with_capacity(1 << 20, source);
    let folder = open_folder(root, relative)?;
    forget_stale_partials(&folder, name);
    let mut nonce = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut nonce);
    let partial = format!(
        "{}{}{PARTIAL_SUFFIX}",
        partial_prefix(name),
        hex::encode(nonce)
    );
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let out = rustix::fs::openat(&folder, partial.as_str(), flags, Mode::from_raw_mode(0o644))?;
    let mut out = std::fs::File::from(out);
    let written = std::io::copy(&mut source, &mut out)
        .and_then(|written| out.sync_all().map(|()| written))
        .and_then(|written| {
            if target(root, relative, name)? == Target::Other {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "something other than a file stands there",
                ));
            }
            rustix::fs::renameat(&folder, partial.as_str(), &folder, name)?;
            Ok(written)
        });
    match written {
        Ok(written) => {
            rustix::fs::fsync(&folder)?;
            Ok(written)
        }
        Err(error) => {
            let _ = rustix::fs::unlinkat(&folder, partial.as_str(), AtFlags::empty());
            Err(error)
        }
    }
}

/// `source`, held to `size` bytes: one that ends short of it, or goes on
/// past it, fails the read, and so the copy, before its file is named (a
/// store that answered a range short, or long, copied a wrong image whole).
pub fn exactly(source: impl std::io::Read, size: u64) -> impl std::io::Read {
    ExactSize { source, left: size }
}

struct ExactSize<R> {
    source: R,
    left: u64,
}

impl<R: std::io::Read> std::io::Read for ExactSize<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut past = [0u8; 1];
            return match self.source.read(&mut past)? {
                0 => Ok(0),
                _ => Err(Error::new(
                    ErrorKind::InvalidData,
                    "the image's bytes go on past its recorded size",
                )),
            };
        }
        let want = usize::try_from(self.left).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = self.source.read(&mut buffer[..want])?;
        if read == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "the image's bytes end {} short of its recorded size",
                    self.left
                ),
            ));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// Removes the file `name` in `relative` below `root`, if a file stands
/// there (what else stands there is left, and gone already is fine).
pub fn remove(root: &Path, relative: &Path, name: &str) -> std::io::Result<()> {
    let folder = match open_folder(root, relative) {
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        opened => opened?,
    };
    match rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
            rustix::fs::unlinkat(&folder, name, AtFlags::empty())?;
            rustix::fs::fsync(&folder)?;
            Ok(())
        }
        Ok(_) => Err(Error::new(
            ErrorKind::AlreadyExists,
            "something other than a file stands there",
        )),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// How long a partial file goes unwritten before it is taken for one a
/// stopped server left: a live copy writes to its own all the time.
const STALE_PARTIAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The start of the names of `name`'s partial copies: `.`, the name, `.`,
/// then come a nonce of 12 hex digits and [`PARTIAL_SUFFIX`]. A long name
/// is cut (at a character) so that its copies' names stay within the 255
/// bytes a file system names: an image's name may take them all.
fn partial_prefix(name: &str) -> String {
    const ROOM: usize = 255 - 2 - 12 - PARTIAL_SUFFIX.len();
    let mut end = name.len().min(ROOM);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
}

/// Removes the partial files of `name` in `folder` that a copy stopped
/// writing long ago (a server killed mid-copy): its retry writes under a
/// new name, and the old one would hold its bytes below the export root,
/// counted by no quota, for good. Best effort: what cannot be read or
/// removed is left.
fn forget_stale_partials(folder: &OwnedFd, name: &str) {
    let Ok(entries) = rustix::fs::Dir::read_from(folder) else {
        return;
    };
    let prefix = partial_prefix(name);
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_bytes();
        let Some(nonce) = entry_name
            .strip_prefix(prefix.as_bytes())
            .and_then(|rest| rest.strip_suffix(PARTIAL_SUFFIX.as_bytes()))
        else {
            continue;
        };
        if nonce.len() != 12 || !nonce.iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        let Ok(stat) = rustix::fs::statat(folder, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        let modified = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
        let stale = now
            .duration_since(modified)
            .is_ok_and(|idle| idle > STALE_PARTIAL);
        if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile && stale {
            let _ = rustix::fs::unlinkat(folder, entry.file_name(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_short_or_long_of_its_size_lays_no_file() {
        let root = tempfile::tempdir().unwrap();
        let here = Path::new("");
        assert_eq!(
            write(root.path(), here, "whole.img", exactly(&b"abc"[..], 3)).unwrap(),
            3
        );
        for (name, size) in [("short.img", 4), ("long.img", 2)] {
            let refused = write(root.path(), here, name, exactly(&b"abc"[..], size));
            assert!(refused.is_err(), "{name}");
            assert!(!root.path().join(name).exists(), "{name}");
        }
        // Nothing else is left: no partial copy.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_name_as_long_as_a_file_system_keeps_is_written() {
        let root = tempfile::tempdir().unwrap();
        for name in ["a".repeat(255), format!("{}.iso", "é".repeat(125))] {
            assert_eq!(
                write(root.path(), Path::new(""), &name, &b"xy"[..]).unwrap(),
                2
            );
            assert_eq!(std::fs::read(root.path().join(&name)).unwrap(), b"xy");
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 2);
    }

    #[test]
    fn writes_below_the_root_and_never_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("alice")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("victim"),
            root.path().join("alice/planted"),
        )
        .unwrap();
        let source = || {
            let file = tempfile::tempfile().unwrap();
            std::fs::write(root.path().join("alice/.src"), b"bytes").unwrap();
            drop(file);
            std::fs::File::open(root.path().join("alice/.src")).unwrap()
        };

        assert_eq!(
            write(root.path(), Path::new("alice"), "disk.img", source()).unwrap(),
            5
        );
        assert_eq!(
            std::fs::read(root.path().join("alice/disk.img")).unwrap(),
            b"bytes"
        );
        // A linked folder is refused, not followed.
        assert!(write(root.path(), Path::new("escape"), "disk.img", source()).is_err());
        assert!(!outside.path().join("disk.img").exists());
        // A link at the target is something other than a file: left alone.
        assert_eq!(
            target(root.path(), Path::new("alice"), "planted").unwrap(),
            Target::Other
        );
        assert!(write(root.path(), Path::new("alice"), "planted", source()).is_err());
        assert!(!outside.path().join("victim").exists());
        assert!(std::fs::symlink_metadata(root.path().join("alice/planted"))
            .unwrap()
            .file_type()
            .is_symlink());
        // `..` never leaves the root.
        assert!(write(root.path(), Path::new("../x"), "disk.img", source()).is_err());
    }

    #[test]
    fn a_copy_stopped_long_ago_leaves_no_partial_file_behind() {
        let root = tempfile::tempdir().unwrap();
        let at = |file: &str| root.path().join(file);
        let stopped = ".disk.img.0123456789ab.depot-partial";
        let live = ".disk.img.ba9876543210.depot-partial";
        let others = [".other.img.0123456789ab.depot-partial", ".disk.img.notes"];
        for file in [stopped, live].iter().chain(&others) {
            std::fs::write(at(file), b"part").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - STALE_PARTIAL * 2;
        for file in [stopped].iter().chain(&others) {
            std::fs::File::options()
                .write(true)
                .open(at(file))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        std::fs::write(at("source"), b"bytes").unwrap();
        let source = std::fs::File::open(at("source")).unwrap();
        assert_eq!(
            write(root.path(), Path::new(""), "disk.img", source).unwrap(),
            5
        );
        assert!(
            !at(stopped).exists(),
            "a stopped copy's partial file was kept"
        );
        for kept in [live].iter().chain(&others) {
            assert!(at(kept).exists(), "{kept} was removed");
        }
    }
}
