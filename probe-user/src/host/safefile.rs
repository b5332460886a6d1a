//! Creating the files mapaudit writes — the report and the logs — so that
//! nothing planted in their directory can redirect the write: the directory
//! is opened once and used by descriptor (a path swapped underneath changes
//! nothing), every file is created fresh (`O_CREAT|O_EXCL|O_NOFOLLOW`) under
//! an unguessable name, and the atomic replace refuses to put the report in
//! place of anything but a regular file (or nothing). Callers run these as
//! the user the file is for (`identity::Identity::run_as`), so the kernel
//! also applies that user's permissions.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

/// A directory, opened once.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What sits at a name in a directory (never following a symlink there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Nothing,
    Regular,
    Other(FileType),
}

impl Entry {
    /// "a symbolic link", "a directory", … for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Regular => "a regular file",
            Self::Other(FileType::Symlink) => "a symbolic link",
            Self::Other(FileType::Directory) => "a directory",
            Self::Other(FileType::Fifo) => "a fifo",
            Self::Other(FileType::Socket) => "a socket",
            Self::Other(FileType::CharacterDevice | FileType::BlockDevice) => "a device",
            Self::Other(_) => "a special file",
        }
    }
}

/// Attempts at a fresh random name before giving up (each collision is
/// 1 in 62^12; many in a row means someone is filling the directory).
const NAME_ATTEMPTS: usize = 64;

impl Dir {
    /// Opens `path` (which must be a directory) for use by descriptor.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is at `name`, not following a symlink.
    pub fn entry(&self, name: &OsStr) -> io::Result<Entry> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Entry::Regular,
                t => Entry::Other(t),
            }),
            Err(rustix::io::Errno::NOENT) => Ok(Entry::Nothing),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a fresh file named `{prefix}{random}{suffix}`, exclusively and
    /// without following symlinks; `mode` before the umask. Returns the file
    /// and its name.
    pub fn create_unique(&self, prefix: &str, suffix: &str, mode: u32) -> io::Result<(File, OsString)> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..NAME_ATTEMPTS {
            let mut name = OsString::from(prefix);
            name.push(random_token()?);
            name.push(suffix);
            match rustix::fs::openat(&self.fd, name.as_os_str(), flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => return Ok((File::from(fd), name)),
                Err(rustix::io::Errno::EXIST) => last = rustix::io::Errno::EXIST.into(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Renames `from` to `to` within this directory, unless `to` is anything
    /// but a regular file or nothing. (Between the check and the rename, a
    /// swapped-in symlink would itself be replaced, never written through.)
    pub fn replace(&self, from: &OsStr, to: &OsStr) -> Result<(), ReplaceError> {
        match self.entry(to)? {
            Entry::Nothing | Entry::Regular => {}
            other => return Err(ReplaceError::NotRegular(other)),
        }
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(io::Error::from)?;
        // Make the rename itself durable.
        let _ = rustix::fs::fsync(&self.fd);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("it is {}, not a regular file", .0.describe())]
    NotRegular(Entry),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// 12 characters of [A-Za-z0-9] from the kernel's random source (~71 bits).
fn random_token() -> io::Result<OsString> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 12];
    let mut filled = 0;
    while filled < bytes.len() {
        filled += rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    // 62 does not divide 256: a negligible bias, irrelevant for unguessability.
    Ok(OsString::from_vec(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]).collect()))
}

/// Writes `data` to `dir/name` atomically: a fresh temp file beside it,
/// fsync, then the guarded rename. When the rename is refused, the data stays
/// in the temp file and the error names it.
pub fn write_atomic(dir: &Dir, name: &OsStr, data: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let shown = dir.path().join(name);
    let prefix = format!(".{}.", name.to_string_lossy());
    let (mut f, tmp) = dir
        .create_unique(&prefix, ".mapaudit-tmp", 0o666)
        .with_context(|| format!("creating a temp file beside {}", shown.display()))?;
    let tmp_shown = dir.path().join(&tmp);
    let written = f.write_all(data).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = dir.remove(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp_shown.display()));
    }
    drop(f);
    match dir.replace(&tmp, name) {
        Ok(()) => Ok(()),
        Err(ReplaceError::NotRegular(what)) => anyhow::bail!(
            "not replacing {}: it is {} now (changed while recording?), and mapaudit only ever replaces a regular \
             file; the report is in {} — move it where you want it",
            shown.display(),
            what.describe(),
            tmp_shown.display()
        ),
        Err(ReplaceError::Io(e)) => {
            let _ = dir.remove(&tmp);
            Err(e).with_context(|| format!("renaming {} to {}", tmp_shown.display(), shown.display()))
        }
    }
}

/// A fresh log file `{stem}-{pid}-{random}.log` (mode 0600) in the temp
/// directory (`$TMPDIR`, else `/tmp`). Returns it and its path.
pub fn create_log(stem: &str) -> io::Result<(File, PathBuf)> {
    let dir = Dir::open(&std::env::temp_dir())?;
    let (f, name) = dir.create_unique(&format!("{stem}-{}-", std::process::id()), ".log", 0o600)?;
    Ok((f, dir.path().join(name)))
}

/// Splits a file path into its directory ("." when none) and final name;
/// None when the path names no file (`/`, `..`, empty).
pub fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?;
    if name.as_bytes().is_empty() {
        return None;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some((dir, name.to_os_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mapaudit-safefile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_are_fresh_and_unguessable() {
        let d = tempdir("names");
        let dir = Dir::open(&d).unwrap();
        let (_, a) = dir.create_unique(".r.json.", ".mapaudit-tmp", 0o600).unwrap();
        let (_, b) = dir.create_unique(".r.json.", ".mapaudit-tmp", 0o600).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), ".r.json.".len() + 12 + ".mapaudit-tmp".len());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_refuses_symlinks_and_keeps_the_data() {
        let d = tempdir("replace");
        let outside = d.join("outside");
        std::fs::write(&outside, b"canary").unwrap();
        let sub = d.join("out");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink(&outside, sub.join("r.json")).unwrap();
        let dir = Dir::open(&sub).unwrap();
        let e = write_atomic(&dir, OsStr::new("r.json"), b"report").unwrap_err().to_string();
        assert!(e.contains("symbolic link") && e.contains("the report is in"), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"canary");
        // The data is kept under the temp name the message gives.
        let kept: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".mapaudit-tmp"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(kept[0].path()).unwrap(), b"report");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_replaces_a_regular_file_not_its_other_links() {
        let d = tempdir("hardlink");
        let dir = Dir::open(&d).unwrap();
        std::fs::write(d.join("other"), b"canary").unwrap();
        std::fs::hard_link(d.join("other"), d.join("r.json")).unwrap();
        write_atomic(&dir, OsStr::new("r.json"), b"report").unwrap();
        assert_eq!(std::fs::read(d.join("r.json")).unwrap(), b"report");
        assert_eq!(std::fs::read(d.join("other")).unwrap(), b"canary");
        assert_eq!(std::fs::metadata(d.join("other")).unwrap().nlink(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_directory_is_used_by_descriptor() {
        let d = tempdir("swap");
        let a = d.join("a");
        std::fs::create_dir(&a).unwrap();
        let dir = Dir::open(&a).unwrap();
        // The path is swapped for a symlink elsewhere after opening.
        std::fs::rename(&a, d.join("moved")).unwrap();
        std::fs::create_dir(d.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), &a).unwrap();
        write_atomic(&dir, OsStr::new("r.json"), b"report").unwrap();
        assert_eq!(std::fs::read(d.join("moved/r.json")).unwrap(), b"report");
        assert!(!d.join("elsewhere/r.json").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn split_needs_a_file_name() {
        assert_eq!(split(Path::new("r.json")), Some((PathBuf::from("."), OsString::from("r.json"))));
        assert_eq!(split(Path::new("/a/b/r.json")), Some((PathBuf::from("/a/b"), OsString::from("r.json"))));
        assert_eq!(split(Path::new("/")), None);
        assert_eq!(split(Path::new("a/..")), None);
    }
}
