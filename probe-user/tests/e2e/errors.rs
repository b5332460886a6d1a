//! Bad input gets a clear error, exit status 2, and never a panic — one test
//! per case. Most need root (the environment checks pass first, then the
//! target is checked); the privilege test drops root itself.

use std::process::{Command, Stdio};

use crate::support::*;

/// Runs `mapaudit ARGS`, asserts exit 2, no panic, and that stderr says
/// every one of `says`.
fn fails_with(args: &[&str], says: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "mapaudit {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for s in says {
        assert!(err.contains(s), "mapaudit {args:?}: expected {s:?} in: {err}");
    }
}

fn json_arg(name: &str) -> String {
    scratch(name).join("r.json").display().to_string()
}

root_test! {
    fn pid_that_does_not_exist(_) {
        fails_with(&["record", "--pid", "999999999", "--json", &json_arg("nopid")], &["no process with pid 999999999"]);
    }
}

root_test! {
    fn pid_that_is_not_go(_) {
        let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = sleep.id().to_string();
        fails_with(&["record", "--pid", &pid, "--json", &json_arg("notgo")], &["is not an auditable Go program", "not a Go binary"]);
        let _ = sleep.kill();
        let _ = sleep.wait();
    }
}

root_test! {
    fn pid_that_is_a_zombie(_) {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait for it to exit without reaping it (WNOWAIT): a zombie.
        let nix_pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
        let flags = nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT;
        nix::sys::wait::waitid(nix::sys::wait::Id::Pid(nix_pid), flags).expect("waitid");
        assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().contains(") Z "), "pid {pid} is a zombie");
        fails_with(&["record", "--pid", &pid.to_string(), "--json", &json_arg("zombie")], &["zombie"]);
        let _ = child.wait();
    }
}

root_test! {
    fn exe_that_is_not_go(_) {
        fails_with(&["record", "--exe", "/bin/ls", "--json", &json_arg("exe_not_go")], &["/bin/ls", "not a Go binary"]);
    }
}

root_test! {
    fn exe_that_is_not_elf(_) {
        let dir = scratch("exe_not_elf");
        let f = dir.join("script.sh");
        std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
        fails_with(&["record", "--exe", f.to_str().unwrap(), "--json", &json_arg("exe_not_elf2")], &["not an ELF"]);
    }
}

root_test! {
    fn go_older_than_supported(_) {
        // A go1.21 binary relabelled as go1.20 (same length) in its build info.
        let bin = fixtures::build("writers", fixtures::GO_OLDEST, Variant::Plain).unwrap();
        let mut data = std::fs::read(&bin).unwrap();
        let (from, to) = (b"go1.21.13", b"go1.20.13");
        let mut n = 0;
        for i in 0..data.len() - from.len() {
            if &data[i..i + from.len()] == from {
                data[i..i + from.len()].copy_from_slice(to);
                n += 1;
            }
        }
        assert!(n > 0);
        let f = scratch("go_too_old").join("old-go");
        std::fs::write(&f, data).unwrap();
        fails_with(&["record", "--exe", f.to_str().unwrap(), "--json", &json_arg("go_too_old2")], &["go1.20", "older than", "supported"]);
    }
}

root_test! {
    fn truncated_elf(_) {
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let data = std::fs::read(&bin).unwrap();
        let f = scratch("truncated").join("cut");
        std::fs::write(&f, &data[..data.len() / 3]).unwrap();
        fails_with(&["record", "--exe", f.to_str().unwrap(), "--json", &json_arg("truncated2")], &["not an auditable Go program"]);
    }
}

user_test! {
    fn json_path_that_is_not_a_regular_file(_) {
        // Checked before anything is attached: no root needed for this one.
        fails_with(&["record", "--json", "/dev/null", "--", "true"], &["/dev/null", "not a regular file"]);
        let dir = scratch("json_dir");
        fails_with(&["record", "--json", dir.to_str().unwrap(), "--", "true"], &["not a regular file"]);
    }
}

user_test! {
    fn json_path_in_a_missing_or_unwritable_directory(_) {
        fails_with(&["record", "--json", "/nonexistent-dir/r.json", "--", "true"], &["does not exist"]);
        fails_with(&["record", "--json", "/proc/r.json", "--", "true"], &["cannot write the report to /proc/r.json"]);
    }
}

root_test! {
    fn command_that_does_not_exist(_) {
        fails_with(&["record", "--json", &json_arg("nocmd"), "--", "/nonexistent/cmd"], &["command not found: /nonexistent/cmd"]);
    }
}

root_test! {
    fn not_root_names_the_missing_capabilities(_) {
        let dir = scratch("not_root");
        // nobody must be able to write the report's directory to get that far.
        Command::new("chmod").args(["777", dir.to_str().unwrap()]).status().unwrap();
        let mut bin_dir = std::path::PathBuf::from(mapaudit_bin());
        while let Some(p) = bin_dir.parent().map(std::path::Path::to_path_buf) {
            // Let nobody reach the binary through target/.
            let _ = Command::new("chmod").args(["o+x", p.to_str().unwrap()]).status();
            if p.as_os_str().len() <= 1 {
                break;
            }
            bin_dir = p;
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", mapaudit_bin(), "record", "--json"])
            .arg(dir.join("r.json"))
            .args(["--", "true"])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        for s in ["needs root", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "setcap"] {
            assert!(err.contains(s), "expected {s:?} in: {err}");
        }
    }
}

root_test! {
    /// A binary without build info whose `runtime.buildVersion` contradicts the
    /// binary itself (a go1.27 build relabelled go1.23: swiss maps, no pclntab
    /// text start) is refused, by file and by pid, naming both sides.
    fn version_without_build_info_that_contradicts_the_binary(_) {
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::StrippedNoBuildInfo).unwrap();
        let mut data = std::fs::read(&bin).unwrap();
        let (from, to) = (b"go1.27.3", b"go1.23.3");
        let mut n = 0;
        for i in 0..data.len() - from.len() {
            if &data[i..i + from.len()] == from {
                data[i..i + from.len()].copy_from_slice(to);
                n += 1;
            }
        }
        assert!(n > 0);
        let f = scratch("version_contradicts").join("relabelled");
        std::fs::write(&f, data).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let says = ["without build info", "runtime.buildVersion says go1.23.3", "Go 1.20–1.25", "refusing"];
        fails_with(&["record", "--exe", f.to_str().unwrap(), "--json", &json_arg("version_contradicts_exe")], &says);

        // The same program running: still refused, and it keeps running.
        let mut child = Command::new(&f).args(["-n", "10", "-wait-signal"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stderr.take().unwrap()), &mut line).unwrap();
        assert!(line.starts_with("READY"), "{line}");
        fails_with(&["record", "--pid", &child.id().to_string(), "--json", &json_arg("version_contradicts_pid")], &says);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A copy of `bin` with every `from` relabelled `to` (same length).
fn relabelled(bin: &std::path::Path, from: &[u8], to: &[u8], dir: &str) -> std::path::PathBuf {
    let mut data = std::fs::read(bin).unwrap();
    let mut n = 0;
    for i in 0..data.len() - from.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
    }
    assert!(n > 0, "{} has no {:?}", bin.display(), String::from_utf8_lossy(from));
    let f = scratch(dir).join("relabelled");
    std::fs::write(&f, data).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    f
}

fn r_has_guess(r: &serde_json::Value) -> bool {
    r["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("newer than the newest Go known"))
}

root_test! {
    /// A Go newer than the matrix (the newest build relabelled go1.28.0):
    /// with DWARF it is audited exactly from the binary's own offsets;
    /// stripped, with the newest known offsets — exact here, since the
    /// layout did not change.
    fn go_newer_than_the_matrix(name) {
        let plain = relabelled(&fixture("writers"), b"go1.27.3", b"go1.28.0", &format!("{name}_plain"));
        let json = scratch(&format!("{name}_plain_report")).join("r.json");
        let out = record(&["record", "--no-bpf-maps", "--json", s(&json), "--", s(&plain), "-n", "2000"]);
        out.assert_success("record a go1.28.0 binary with DWARF");
        assert!(!r_has_guess(&read_json(&json)), "DWARF gives the offsets: no guess");
        let r = read_json(&json);
        let t = out.truth();
        assert_eq!(process(&r, t["pid"].as_u64().unwrap())["go_version"], "go1.28.0");
        assert_writers_truth(&r, &t, name);

        let stripped = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Stripped).unwrap();
        let stripped = relabelled(&stripped, b"go1.27.3", b"go1.28.0", &format!("{name}_stripped"));
        let json = scratch(&format!("{name}_stripped_report")).join("r.json");
        let out = record(&["record", "--no-bpf-maps", "--json", s(&json), "--", s(&stripped), "-n", "2000"]);
        out.assert_success("record a stripped go1.28.0 binary");
        let r = read_json(&json);
        let t = out.truth();
        assert_writers_truth(&r, &t, name);
        assert_eq!(process(&r, t["pid"].as_u64().unwrap())["go_version"], "go1.28.0");
        // Stripped: the newest table's offsets are a guess, and the report says so.
        let warning = format!(
            "{} (pid {}): go1.28.0 is newer than the newest Go known (go1.27) and the binary has no DWARF: using \
             go1.27's runtime offsets, a guess",
            stripped.display(),
            t["pid"]
        );
        assert_eq!(r["warnings"], serde_json::json!([warning]));
    }
}
