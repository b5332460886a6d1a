//! Which container and Kubernetes pod a process runs in: the pod UID and
//! container id from its cgroup path (`/proc/PID/cgroup`, cgroup v2 or v1,
//! systemd or cgroupfs driver; containerd, CRI-O, docker, podman), the pod
//! name from the container's `HOSTNAME` (`/proc/PID/environ`: the kubelet
//! sets it to the pod name) and the namespace from the service-account
//! mount as the container sees it (`/proc/PID/root/...`).
//!
//! Everything read here is written by, or reachable from, the audited
//! container: it is untrusted. Reads are size-limited, values are checked
//! against what Kubernetes allows before they are used (they become JSON
//! fields and metric labels), and the namespace file is opened with
//! `openat2(RESOLVE_IN_ROOT)` under the container's root, so a symlink
//! planted in the container resolves inside the container, never into the
//! host. Outside Kubernetes the result is the container id or nothing —
//! never an error.

use std::io::Read as _;

use serde::{Deserialize, Serialize};

/// A process's container and pod, as far as they could be told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The container id (64 hex digits for containerd, CRI-O, docker, podman).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `containerd`, `cri-o`, `docker` or `podman`, when the cgroup name says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The Kubernetes pod UID (with dashes, as `kubectl get pod -o yaml` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod name (the container's `HOSTNAME`); only inside a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's namespace (its service-account mount); only inside a pod
    /// that mounts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Container {
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.pod_uid.is_none()
    }

    /// `namespace/pod`, the pod UID, or the short container id: what a
    /// one-column view shows.
    pub fn short(&self) -> String {
        match (&self.namespace, &self.pod, &self.pod_uid, &self.id) {
            (Some(ns), Some(pod), _, _) => format!("{ns}/{pod}"),
            (None, Some(pod), _, _) => pod.clone(),
            (_, _, Some(uid), _) => format!("pod {uid}"),
            (_, _, _, Some(id)) => id.chars().take(12).collect(),
            _ => String::new(),
        }
    }
}

/// The most of `/proc/PID/cgroup`, `environ` and the namespace file read.
const CGROUP_MAX: u64 = 64 * 1024;
const ENVIRON_MAX: u64 = 1024 * 1024;
const NAMESPACE_MAX: u64 = 256;
const SERVICE_ACCOUNT_NAMESPACE: &str = "var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The container and pod of `pid`; None outside any container (or when the
/// process is gone).
pub fn of_pid(pid: u32) -> Option<Container> {
    let cgroup = read_limited(&format!("/proc/{pid}/cgroup"), CGROUP_MAX)?;
    let mut c = parse_cgroup_file(&String::from_utf8_lossy(&cgroup))?;
    if c.pod_uid.is_some() {
        c.pod = read_limited(&format!("/proc/{pid}/environ"), ENVIRON_MAX).and_then(|e| hostname(&e));
        c.namespace = namespace(pid);
    }
    Some(c)
}

fn read_limited(path: &str, max: u64) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path).ok()?.take(max).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The service-account namespace as the container sees it. `RESOLVE_IN_ROOT`
/// makes the container's root the root of every lookup (`..` and absolute
/// symlinks included), `NO_MAGICLINKS` refuses /proc links out of it; the
/// file must be a regular file. Kernels without openat2 (before 5.6): None.
fn namespace(pid: u32) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        SERVICE_ACCOUNT_NAMESPACE,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd).take(NAMESPACE_MAX).read_to_end(&mut buf).ok()?;
    let ns = std::str::from_utf8(&buf).ok()?.trim();
    dns_label(ns).then(|| ns.to_string())
}

/// `HOSTNAME` from a NUL-separated environment block, when it is a valid
/// pod name (a DNS subdomain).
pub fn hostname(environ: &[u8]) -> Option<String> {
    let v = environ.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(b"HOSTNAME="))?;
    let v = std::str::from_utf8(v).ok()?;
    dns_subdomain(v).then(|| v.to_string())
}

/// RFC 1123 label: what a namespace name may be.
fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what a pod name may be.
fn dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(dns_label)
}

/// The container of a whole `/proc/PID/cgroup`: the cgroup v2 line
/// (`0::PATH`) first, else the first v1 hierarchy whose path names one.
pub fn parse_cgroup_file(text: &str) -> Option<Container> {
    let paths: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, _controllers, path) = (it.next()?, it.next()?, it.next()?);
            Some((id, path))
        })
        .collect();
    let v2 = paths.iter().filter(|(id, _)| *id == "0").filter_map(|(_, p)| parse_cgroup_path(p));
    let v1 = paths.iter().filter(|(id, _)| *id != "0").filter_map(|(_, p)| parse_cgroup_path(p));
    v2.chain(v1).next()
}

/// The container of one cgroup path, e.g.
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
/// (systemd driver: the UID's dashes are underscores) or
/// `/kubepods/burstable/pod<uid>/<id>` (cgroupfs driver).
pub fn parse_cgroup_path(path: &str) -> Option<Container> {
    let mut c = Container::default();
    let mut in_kubepods = false;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "kubepods" || part.starts_with("kubepods.") || part.starts_with("kubepods-") {
            in_kubepods = true;
        }
        if let Some(uid) = pod_uid(part, in_kubepods) {
            c.pod_uid = Some(uid);
            continue;
        }
        if let Some((id, runtime)) = container_id(part) {
            c.id = Some(id);
            c.runtime = runtime.map(str::to_string);
        }
    }
    (!c.is_empty()).then_some(c)
}

/// `kubepods-burstable-pod<uid>.slice`, `kubepods-pod<uid>.slice` (systemd)
/// or `pod<uid>` under a kubepods cgroup (cgroupfs).
fn pod_uid(part: &str, in_kubepods: bool) -> Option<String> {
    let raw = if let Some(slice) = part.strip_prefix("kubepods").and_then(|p| p.strip_suffix(".slice")) {
        slice.rsplit_once("-pod")?.1
    } else if in_kubepods {
        part.strip_prefix("pod")?
    } else {
        return None;
    };
    let uid = raw.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// 8-4-4-4-12 hex digits.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`,
/// `libpod-<id>.scope`, or a plain 64-hex-digit id (cgroupfs driver,
/// docker's `/docker/<id>`). CRI-O's `crio-conmon-<id>.scope` is its
/// monitor, not the container.
fn container_id(part: &str) -> Option<(String, Option<&'static str>)> {
    const PREFIXES: [(&str, &str); 4] =
        [("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("docker-", "docker"), ("libpod-", "podman")];
    if let Some(scope) = part.strip_suffix(".scope") {
        for (prefix, runtime) in PREFIXES {
            if let Some(id) = scope.strip_prefix(prefix)
                && is_container_id(id)
            {
                return Some((id.to_string(), Some(runtime)));
            }
        }
        return None;
    }
    is_container_id(part).then(|| (part.to_string(), None))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const UID: &str = "5f0e3b8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b";

    fn c(id: Option<&str>, runtime: Option<&str>, uid: Option<&str>) -> Option<Container> {
        Some(Container {
            id: id.map(str::to_string),
            runtime: runtime.map(str::to_string),
            pod_uid: uid.map(str::to_string),
            ..Default::default()
        })
    }

    #[test]
    fn systemd_driver_cgroup_v2() {
        let u = UID.replace('-', "_");
        for (qos, runtime, prefix) in [
            ("burstable", "containerd", "cri-containerd-"),
            ("besteffort", "cri-o", "crio-"),
            ("burstable", "docker", "docker-"),
        ] {
            let line = format!(
                "0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/{prefix}{ID}.scope"
            );
            assert_eq!(parse_cgroup_file(&line), c(Some(ID), Some(runtime), Some(UID)), "{line}");
        }
        // Guaranteed QoS pods sit directly under kubepods.slice.
        let line = format!("0::/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_cgroup_file(&line), c(Some(ID), Some("containerd"), Some(UID)));
        // A pod's own cgroup (the sandbox's parent): the pod, no container.
        let line = format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice");
        assert_eq!(parse_cgroup_file(&line), c(None, None, Some(UID)));
    }

    #[test]
    fn cgroupfs_driver_and_v1() {
        let file = format!(
            "12:pids:/kubepods/burstable/pod{UID}/{ID}\n\
             11:memory:/kubepods/burstable/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n"
        );
        assert_eq!(parse_cgroup_file(&file), c(Some(ID), None, Some(UID)));
        // Guaranteed: no QoS level.
        assert_eq!(parse_cgroup_file(&format!("0::/kubepods/pod{UID}/{ID}")), c(Some(ID), None, Some(UID)));
        // v1 with the systemd driver (CRI-O on an older node).
        let u = UID.replace('-', "_");
        let file = format!(
            "10:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{ID}.scope\n\
             0::/\n"
        );
        assert_eq!(parse_cgroup_file(&file), c(Some(ID), Some("cri-o"), Some(UID)));
    }

    #[test]
    fn containers_outside_kubernetes() {
        assert_eq!(parse_cgroup_file(&format!("0::/system.slice/docker-{ID}.scope")), c(Some(ID), Some("docker"), None));
        assert_eq!(parse_cgroup_file(&format!("0::/docker/{ID}")), c(Some(ID), None, None));
        assert_eq!(
            parse_cgroup_file(&format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container")),
            c(Some(ID), Some("podman"), None)
        );
        // "pod" directories outside kubepods are not pods.
        assert_eq!(parse_cgroup_file(&format!("0::/machine/pod{UID}")), None);
    }

    #[test]
    fn no_container_is_none_never_an_error() {
        for text in [
            "0::/user.slice/user-1000.slice/session-3.scope",
            "0::/init.scope",
            "0::/",
            "",
            "garbage without colons",
            "0::/system.slice/containerd.service",
            "12:memory:/user.slice\n0::/system.slice/ssh.service",
            // CRI-O's monitor process, and ids of the wrong shape.
            &format!("0::/kubepods.slice/crio-conmon-{ID}.scope"),
            "0::/system.slice/docker-0a1b2c.scope",
            &format!("0::/system.slice/docker-{}.scope", ID.to_uppercase()),
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnot_a_uid.slice",
        ] {
            let got = parse_cgroup_file(text);
            assert!(
                got.is_none() || got.as_ref().is_some_and(|c| c.pod_uid.is_none() && c.id.is_none()),
                "{text:?}: {got:?}"
            );
            assert_eq!(got, None, "{text:?}");
        }
    }

    #[test]
    fn hostname_is_the_pod_name_when_valid() {
        assert_eq!(hostname(b"PATH=/bin\0HOSTNAME=web-7d9f8c-x2k4q\0HOME=/\0"), Some("web-7d9f8c-x2k4q".into()));
        assert_eq!(hostname(b"HOSTNAME=a.b-c\0"), Some("a.b-c".into()));
        assert_eq!(hostname(b"PATH=/bin\0"), None);
        assert_eq!(hostname(b"HOSTNAME=\0"), None);
        assert_eq!(hostname(b"HOSTNAME=Evil\"label}\0"), None);
        assert_eq!(hostname(b"HOSTNAME=a\nb\0"), None);
        assert_eq!(hostname(format!("HOSTNAME={}\0", "a".repeat(300)).as_bytes()), None);
        // Only a whole variable named HOSTNAME.
        assert_eq!(hostname(b"XHOSTNAME=x\0"), None);
    }

    #[test]
    fn short_names() {
        let mut k = Container { id: Some(ID.into()), pod_uid: Some(UID.into()), ..Default::default() };
        assert_eq!(k.short(), format!("pod {UID}"));
        k.pod = Some("web-0".into());
        assert_eq!(k.short(), "web-0");
        k.namespace = Some("prod".into());
        assert_eq!(k.short(), "prod/web-0");
        assert_eq!(Container { id: Some(ID.into()), ..Default::default() }.short(), &ID[..12]);
    }

    #[test]
    fn own_process_never_errors() {
        // Whatever this test runs in (container or not), no panic, no error.
        let _ = of_pid(std::process::id());
        assert_eq!(of_pid(u32::MAX), None);
    }
}
