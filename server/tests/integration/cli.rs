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

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn admin_create_and_reset_password_print_a_one_time_password(pool: sqlx::PgPool) {
    use sqlx::ConnectOptions as _;
    let url = pool.connect_options().to_url_lossy().to_string();
    let env = [("CLAWLOOPS_DATABASE_URL", url.as_str())];

    let out = clawloops(&["admin", "create", "--username", "Ops"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("Created admin ops. One-time password"),
        "{stdout}"
    );
    let row: (String, bool) =
        sqlx::query_as("SELECT role, must_change_password FROM users WHERE username = 'ops'")
            .fetch_one(&pool)
            .await
            .expect("created");
    assert_eq!(row, ("admin".to_owned(), true));

    let out = clawloops(&["admin", "create", "--username", "ops"], &env);
    assert_eq!(out.status.code(), Some(1), "a second ops is refused");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), "too short\n").expect("write");
    let path = file.path().to_str().expect("utf8");
    let out = clawloops(
        &[
            "admin",
            "create",
            "--username",
            "ops2",
            "--password-file",
            path,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("at least 10 characters"),
        "{}",
        stderr(&out)
    );

    let out = clawloops(&["admin", "reset-password", "--username", "OPS"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("New one-time password for ops"), "{stdout}");
    let reset: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'password.reset' AND actor_name = 'cli'",
    )
    .fetch_one(&pool)
    .await
    .expect("audited");
    assert_eq!(reset, 1);

    let out = clawloops(&["admin", "reset-password", "--username", "nobody"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}
