//! The `clawloops` server: settings, the database (embedded or external), the HTTP router
//! (Leptos app, health, metrics) and the process lifecycle.

pub mod cli;
pub mod database;
pub mod embedded_db;
pub mod entry;
pub mod gateway;
pub mod http;
pub mod installation;
pub mod runtime_manager;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

use app::ssr::BuildInfo;
use time::OffsetDateTime;

/// Facts about this binary's build, recorded by `build.rs`.
pub fn build_info() -> BuildInfo {
    let built_at = env!("CLAWLOOPS_BUILD_UNIX")
        .parse::<i64>()
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let commit = env!("CLAWLOOPS_GIT_COMMIT");
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        git_commit: (!commit.is_empty()).then_some(commit),
        built_at,
    }
}
