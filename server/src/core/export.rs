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
    let mut nonce = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut nonce);
    let partial = format!(".{name}.{}.depot-partial", hex::encode(nonce));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
