//! Whom mapaudit acts for. mapaudit runs as root (or with capabilities), but
//! the person who asked is, under sudo, the invoking user (`SUDO_UID`,
//! `SUDO_GID`), or whoever `--user NAME` names. CMD runs as that user, and
//! every file mapaudit writes (the report, logs) is created as that user, so
//! mapaudit can never write where that user could not (see README "Threat
//! model").
//!
//! Design: file operations for the user run on a short-lived thread whose
//! kernel credentials (uid, gid, supplementary groups) are the user's,
//! switched with the raw per-thread syscalls (`rustix::thread::set_thread_*`,
//! not glibc's process-wide `setuid`). The kernel then enforces the user's
//! permissions on every path lookup, create and rename — symlinks, sticky
//! directories, ACLs, read-only mounts included — with no permission logic
//! re-implemented here, no fork (mapaudit is multi-threaded), and nothing to
//! restore: the thread simply ends. `setfsuid` alone was the alternative, but
//! it keeps root's supplementary groups (group `root` could then grant access
//! the user does not have).

use std::ffi::{CString, OsString};
use std::path::PathBuf;

use anyhow::{Context as _, bail};

/// A user mapaudit acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as `initgroups(3)` would set them.
    pub groups: Vec<u32>,
    /// The user name (`USER`, `LOGNAME`), or the uid when no passwd entry.
    pub name: String,
    /// From the passwd entry (`HOME`); `/` when there is none.
    pub home: PathBuf,
    /// From the passwd entry (`SHELL`); `/bin/sh` when empty or none.
    pub shell: PathBuf,
}

impl Identity {
    /// `--user NAME` wins; else, when mapaudit runs as root under sudo, the
    /// invoking user (`SUDO_UID`/`SUDO_GID`; never root itself); else None:
    /// mapaudit acts as itself. (Without root, `SUDO_UID` is not ours to
    /// honour: `sudo -u other mapaudit` has no power to act for the invoker.)
    pub fn resolve(user: Option<&str>) -> anyhow::Result<Option<Self>> {
        if let Some(name) = user {
            let pw = nix::unistd::User::from_name(name)
                .with_context(|| format!("--user {name}: reading the user database"))?;
            let Some(pw) = pw else { bail!("--user {name}: no such user") };
            let (uid, gid) = (pw.uid.as_raw(), pw.gid.as_raw());
            return Ok(Some(Self::from_passwd(Some(pw), uid, gid)));
        }
        if !rustix::process::geteuid().is_root() {
            return Ok(None);
        }
        let uid = std::env::var("SUDO_UID").ok().and_then(|v| v.parse::<u32>().ok());
        let gid = std::env::var("SUDO_GID").ok().and_then(|v| v.parse::<u32>().ok());
        let (Some(uid), Some(gid)) = (uid, gid) else { return Ok(None) };
        if uid == 0 {
            return Ok(None);
        }
        if uid == u32::MAX || gid == u32::MAX {
            bail!("SUDO_UID/SUDO_GID {uid}/{gid} is not a user; run mapaudit through sudo, or unset them");
        }
        let pw = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .with_context(|| format!("SUDO_UID {uid}: reading the user database"))?;
        Ok(Some(Self::from_passwd(pw, uid, gid)))
    }

    fn from_passwd(pw: Option<nix::unistd::User>, uid: u32, gid: u32) -> Self {
        let Some(pw) = pw else {
            // sudo would not have run for a user without an entry; be safe anyway.
            return Self { uid, gid, groups: vec![gid], name: uid.to_string(), home: "/".into(), shell: "/bin/sh".into() };
        };
        let groups = CString::new(pw.name.as_bytes())
            .ok()
            .and_then(|n| nix::unistd::getgrouplist(&n, nix::unistd::Gid::from_raw(gid)).ok())
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        let shell = if pw.shell.as_os_str().is_empty() { "/bin/sh".into() } else { pw.shell };
        Self { uid, gid, groups, name: pw.name, home: pw.dir, shell }
    }

    /// True when mapaudit already is this user (nothing to switch).
    pub fn is_current(&self) -> bool {
        rustix::process::geteuid().as_raw() == self.uid && rustix::process::getegid().as_raw() == self.gid
    }

    /// "you" or "user NAME (uid N)", for messages.
    pub fn describe(&self) -> String {
        format!("user {} (uid {})", self.name, self.uid)
    }

    /// Runs `f` with this user's kernel credentials (uid, gid, supplementary
    /// groups; no capabilities), on a thread of its own that ends with `f`.
    /// Only the calling thread's credentials change (raw syscalls, not the
    /// glibc wrappers that broadcast to every thread).
    pub fn run_as<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        if self.is_current() {
            return Ok(f());
        }
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new().name("mapaudit-as-user".into()).spawn_scoped(scope, || {
                let groups: Vec<rustix::process::Gid> =
                    self.groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect();
                // Never u32::MAX ("leave unchanged" to the kernel): `resolve`
                // refuses it and no passwd entry carries it.
                let gid = rustix::process::Gid::from_raw(self.gid);
                let uid = rustix::process::Uid::from_raw(self.uid);
                // Groups and gid first: once the uid is the user's, the thread
                // no longer has the capability to change them.
                rustix::thread::set_thread_groups(&groups)
                    .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
                    .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot act as {} ({e}): mapaudit needs root (or CAP_SETUID and CAP_SETGID) to write files as \
                             the user it runs the command for",
                            self.describe()
                        )
                    })?;
                Ok(f())
            });
            match worker {
                Ok(h) => h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the thread acting as {} panicked", self.describe()))),
                Err(e) => Err(anyhow::anyhow!("starting a thread to act as {}: {e}", self.describe())),
            }
        })
    }

    /// The variables CMD's environment gets for this user, as `sudo -u USER`
    /// sets them: `HOME` from the passwd entry, `USER` and `LOGNAME` the user
    /// name, `SHELL` and `MAIL`. `PATH` is the one mapaudit was given —
    /// under sudo that already is sudo's choice (`secure_path`, or the
    /// caller's PATH where none is configured), which is what `sudo -u USER
    /// CMD` would give CMD — without empty or relative entries (they would
    /// search CMD's working directory); `/usr/local/bin:/usr/bin:/bin` when
    /// unset or empty.
    pub fn child_env(&self, path: Option<OsString>) -> Vec<(&'static str, OsString)> {
        vec![
            ("HOME", self.home.clone().into_os_string()),
            ("USER", self.name.clone().into()),
            ("LOGNAME", self.name.clone().into()),
            ("SHELL", self.shell.clone().into_os_string()),
            ("MAIL", format!("/var/mail/{}", self.name).into()),
            ("PATH", sane_path(path)),
        ]
    }
}

pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `path` without empty or relative entries; the default when nothing is left.
pub fn sane_path(path: Option<OsString>) -> OsString {
    let kept: Vec<PathBuf> =
        path.iter().flat_map(std::env::split_paths).filter(|p| p.is_absolute()).collect();
    if kept.is_empty() {
        return DEFAULT_PATH.into();
    }
    std::env::join_paths(kept).unwrap_or_else(|_| DEFAULT_PATH.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keeps_absolute_entries_only() {
        assert_eq!(sane_path(Some("/usr/bin::.:bin:/bin".into())), OsString::from("/usr/bin:/bin"));
        assert_eq!(sane_path(Some("".into())), OsString::from(DEFAULT_PATH));
        assert_eq!(sane_path(None), OsString::from(DEFAULT_PATH));
    }

    #[test]
    fn env_is_the_users() {
        let id = Identity {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
            name: "ci".into(),
            home: "/home/ci".into(),
            shell: "/bin/bash".into(),
        };
        let env = id.child_env(Some("/root/bin:/usr/bin".into()));
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("HOME"), "/home/ci");
        assert_eq!(get("USER"), "ci");
        assert_eq!(get("LOGNAME"), "ci");
        assert_eq!(get("MAIL"), "/var/mail/ci");
        assert_eq!(get("PATH"), "/root/bin:/usr/bin");
    }

    #[test]
    fn unknown_user_is_an_error_naming_it() {
        let e = Identity::resolve(Some("no-such-user-xyz")).unwrap_err().to_string();
        assert!(e.contains("no such user"), "{e}");
    }
}
