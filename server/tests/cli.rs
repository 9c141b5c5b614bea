//! The binary's answers to bad input: one clear message, a non-zero exit, never a panic.

use std::process::{Command, Output};

fn clawloops(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawloops"));
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLAWLOOPS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_malformed_setting_exits_2_naming_it() {
    let out = clawloops(&["serve"], &[("CLAWLOOPS_LISTEN_ADDR", "nope")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("`listen_addr`"), "{err}");
    assert!(err.contains("CLAWLOOPS_LISTEN_ADDR"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_settings_file_exits_2() {
    let out = clawloops(&["--config", "/nonexistent/clawloops.toml", "serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_database_is_one_clear_message_without_the_password() {
    let out = clawloops(
        &["migrate"],
        &[(
            "CLAWLOOPS_DATABASE_URL",
            "postgres://claw:s3cretpw@127.0.0.1:1/claw",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the database at postgres://claw:***@127.0.0.1:1/claw"),
        "{err}"
    );
    assert!(!err.contains("s3cretpw"), "password leaked: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_port_in_use_is_one_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = clawloops(
        &["serve"],
        &[
            ("CLAWLOOPS_LISTEN_ADDR", &addr),
            ("CLAWLOOPS_DATABASE_URL", "postgres://claw@127.0.0.1:1/claw"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
