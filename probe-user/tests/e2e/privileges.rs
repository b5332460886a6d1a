//! Least privilege: under sudo, `record -- CMD` runs CMD as the invoking
//! user, not as root; `--user` overrides.

use crate::support::*;

fn uid_of_command(name: &str, env: &[(&str, &str)], extra: &[&str]) -> String {
    // The report is written as the user CMD runs as: a directory nobody can write.
    let json = scratch_owned(name, 65534, 65534).join("r.json");
    let mut cmd = std::process::Command::new(mapaudit_bin());
    cmd.args(["record", "--no-bpf-maps", "--json", json.to_str().unwrap()]).args(extra).args(["--", "/usr/bin/id", "-u"]);
    cmd.env_remove("SUDO_UID").env_remove("SUDO_GID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The report, written as that user, is a valid report like any other.
    assert_eq!(read_json(&json)["schema"], "mapaudit/v1");
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_string()
}

root_test! {
    fn command_runs_as_the_sudo_user(name) {
        assert_eq!(uid_of_command(name, &[("SUDO_UID", "65534"), ("SUDO_GID", "65534")], &[]), "65534");
    }
}

root_test! {
    fn user_flag_overrides_and_plain_root_stays_root(name) {
        assert_eq!(uid_of_command(name, &[("SUDO_UID", "65534"), ("SUDO_GID", "65534")], &["--user", "root"]), "0");
        assert_eq!(uid_of_command(&format!("{name}_2"), &[], &["--user", "nobody"]), "65534");
        assert_eq!(uid_of_command(&format!("{name}_3"), &[], &[]), "0");
        let out = run(&["record", "--json", "-", "--user", "no-such-user-xyz", "--", "/bin/true"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    }
}

root_test! {
    fn runs_with_capabilities_instead_of_root(name) {
        // A world-reachable copy of mapaudit with the README's file capabilities,
        // run as nobody on a fixture nobody may run.
        let dir = std::env::temp_dir().join(format!("mapaudit-caps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let m = dir.join("mapaudit");
        let fx = dir.join("writers");
        std::fs::copy(mapaudit_bin(), &m).unwrap();
        std::fs::copy(fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap(), &fx).unwrap();
        for p in [&dir, &m, &fx] {
            std::process::Command::new("chmod").args(["777"]).arg(p).status().unwrap();
        }
        let caps = "cap_bpf,cap_perfmon,cap_sys_admin,cap_kill,cap_dac_read_search+ep";
        assert!(std::process::Command::new("setcap").args([caps]).arg(&m).status().unwrap().success());
        let json = dir.join("r.json");
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&m)
            .args(["record", "--no-bpf-maps", "--json"])
            .arg(&json)
            .arg("--")
            .arg(&fx)
            .args(["-n", "1000"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report = read_json(&json);
        assert_writers_truth(&report, &truth(&out.stdout), name);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

root_test! {
    /// README: "To audit other users' processes (`--pid`, system-wide) without
    /// root, add `cap_sys_ptrace`": as nobody with the README's capabilities,
    /// root's process is refused with a message saying so; with
    /// cap_sys_ptrace added it is audited, exactly.
    fn cap_sys_ptrace_audits_another_users_process(name) {
        let dir = std::env::temp_dir().join(format!("mapaudit-ptrace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let m = dir.join("mapaudit");
        std::fs::copy(mapaudit_bin(), &m).unwrap();
        for p in [&dir, &m] {
            std::process::Command::new("chmod").args(["777"]).arg(p).status().unwrap();
        }
        // Root's process, waiting before its writes.
        let fx = spawn_waiting(&fixtures::build("exact", fixtures::GO_NEWEST, Variant::Plain).unwrap(), &["-n", "2000"]);
        let pid = fx.pid().to_string();
        let json = dir.join("r.json");
        let as_nobody = |caps: &str| {
            assert!(std::process::Command::new("setcap").args([caps]).arg(&m).status().unwrap().success());
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&m)
                .args(["record", "--no-bpf-maps", "--pid", &pid, "--json"])
                .arg(&json);
            c
        };
        let base = "cap_bpf,cap_perfmon,cap_sys_admin,cap_kill,cap_dac_read_search";
        let out = as_nobody(&format!("{base}+ep")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("another user's process needs root or cap_sys_ptrace"), "{err}");
        assert!(!json.exists());

        let (rec, _) = start_mapaudit_cmd(as_nobody(&format!("{base},cap_sys_ptrace+ep")));
        fx.go();
        let t = fx.wait().truth();
        rec.wait().assert_success("a --pid recording ends with its target");
        let r = read_json(&json);
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(r["totals"][f], t[f], "{name}: totals.{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
