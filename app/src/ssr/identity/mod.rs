//! Identity: who people are and how they get in — accounts and roles (users), invitations,
//! one's own account (password, sessions), the first admin (bootstrap), signing in and the
//! access gate (auth), with the repositories of their tables (repo).

pub mod account;
pub mod auth;
pub mod bootstrap;
pub mod invitations;
pub mod repo;
pub mod sso;
pub mod users;
