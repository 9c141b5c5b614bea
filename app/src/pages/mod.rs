//! One module per page.

pub mod account;
pub mod admin;
pub mod errors;
pub mod home;
pub mod invite;
pub mod login;
pub mod models;
pub mod not_found;
pub mod sso_link;
pub mod usage;
pub mod workspace;
