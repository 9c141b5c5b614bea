//! The server's integration tests, one test binary (one link of the server and its
//! dependencies instead of one per file). Each module is one concern; `support` is the
//! server-side harness on top of `clawloops-testkit`. cargo-nextest runs each test in its own
//! process (`.config/nextest.toml`), so nothing one test starts outlives it.

mod admin;
mod cli;
mod deploy;
mod deploy_swarm;
mod embedded_db;
mod entry;
mod gateway;
mod http;
mod identity;
mod kubernetes;
mod kubernetes_smoke;
mod litellm;
mod lockdown;
mod migrations;
mod replicas;
mod runtimes;
mod support;
mod swarm;
mod throttle;
