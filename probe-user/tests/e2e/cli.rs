//! The command line's own contract: an unknown command is an error (exit
//! 2), and the log level comes from `--log-level` or `MAPAUDIT_LOG`.

use crate::support::*;

user_test! {
    fn an_unknown_command_exits_2(_) {
        let out = run(&["frobnicate"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("frobnicate"), "the error names the command: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

root_test! {
    /// Off by default; `--log-level debug` and `MAPAUDIT_LOG=debug` turn
    /// on the same debug lines (the report's timing, logged at its end).
    fn log_level_flag_and_environment(name) {
        let dir = scratch(name);
        let rec = |args: &[&str], env: Option<&str>| {
            let json = dir.join("r.json");
            let mut c = mapaudit(&["record", "--no-bpf-maps", "--json", s(&json)]);
            c.args(args).args(["--", "/bin/true"]).env_remove("MAPAUDIT_LOG");
            if let Some(v) = env {
                c.env("MAPAUDIT_LOG", v);
            }
            let out = Proc::spawn(c).wait();
            out.assert_success("record /bin/true");
            read_json(&json);
            out.stderr
        };
        let quiet = rec(&[], None);
        assert!(!quiet.contains("report written"), "no debug log by default: {quiet}");
        let flag = rec(&["--log-level", "debug"], None);
        assert!(flag.contains("report written"), "--log-level debug: {flag}");
        let env = rec(&[], Some("debug"));
        assert!(env.contains("report written"), "MAPAUDIT_LOG=debug: {env}");
        let both = rec(&["--log-level", "off"], Some("debug"));
        assert!(!both.contains("report written"), "the flag wins over the environment: {both}");
    }
}

user_test! {
    /// The emulated machine's generous exec-stop deadline (see
    /// `EXEC_STOP_TIMEOUT_ENV`) goes where clap takes it, and never over a
    /// test's own.
    fn exec_stop_timeout_goes_after_record_unless_chosen(_name) {
        let f = |a: &[&'static str], t| with_exec_stop_timeout(a, t);
        assert_eq!(f(&["record", "--json", "x", "--", "a"], Some("30s")), ["record", "--exec-stop-timeout", "30s", "--json", "x", "--", "a"]);
        assert_eq!(f(&["--log-level", "info", "record", "--", "a"], Some("30s"))[3..5], ["--exec-stop-timeout", "30s"]);
        assert_eq!(f(&["record", "--exec-stop-timeout", "200ms", "--", "a"], Some("30s")), ["record", "--exec-stop-timeout", "200ms", "--", "a"]);
        assert_eq!(f(&["record", "--pid", "1"], Some("30s")), ["record", "--pid", "1"]);
        assert_eq!(f(&["record", "--", "a"], None), ["record", "--", "a"]);
    }
}
