//! Least privilege: under sudo, `record -- CMD` runs CMD as the invoking
//! user, not as root; `--user` overrides.

mod support;

use support::*;

fn uid_of_command(name: &str, env: &[(&str, &str)], extra: &[&str]) -> String {
    let json = scratch(name).join("r.json");
    let mut cmd = std::process::Command::new(mapaudit_bin());
    cmd.args(["record", "--no-bpf-maps", "--json", json.to_str().unwrap()]).args(extra).args(["--", "/usr/bin/id", "-u"]);
    cmd.env_remove("SUDO_UID").env_remove("SUDO_GID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_string()
}

#[test]
fn command_runs_as_the_sudo_user() {
    let name = "command_runs_as_the_sudo_user";
    if !root_or_skip(name) {
        return;
    }
    assert_eq!(uid_of_command(name, &[("SUDO_UID", "65534"), ("SUDO_GID", "65534")], &[]), "65534");
}

#[test]
fn user_flag_overrides_and_plain_root_stays_root() {
    let name = "user_flag_overrides";
    if !root_or_skip(name) {
        return;
    }
    assert_eq!(uid_of_command(name, &[("SUDO_UID", "65534"), ("SUDO_GID", "65534")], &["--user", "root"]), "0");
    assert_eq!(uid_of_command(&format!("{name}_2"), &[], &["--user", "nobody"]), "65534");
    assert_eq!(uid_of_command(&format!("{name}_3"), &[], &[]), "0");
    let out = run(&["record", "--json", "-", "--user", "no-such-user-xyz", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}
