#![recursion_limit = "256"]
//! The ClawLoops web application: pages, components, the types shared by browser and server,
//! and the `#[server]` functions the pages call.
//!
//! Everything that only runs on the server (database access, application state) lives behind
//! the `ssr` feature in [`ssr`]; the browser build (`hydrate`) never sees it.

pub mod api;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
mod shell;
#[cfg(feature = "ssr")]
pub mod ssr;

pub use error::AppError;
pub use shell::{App, shell};
