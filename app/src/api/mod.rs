//! Server functions and the data they return. Each submodule is one area of the app.

pub mod admin;
pub mod auth;
pub mod breaker;
pub mod budget;
pub mod invitations;
pub mod models;
pub mod runtime;
pub mod sso;
pub mod status;
pub mod users;
