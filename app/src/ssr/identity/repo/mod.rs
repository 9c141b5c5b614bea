//! Identity's repositories: one module per table, each function one statement (or a short
//! sequence inside the caller's transaction). They take any executor, so callers choose
//! between the pool and a transaction.

pub mod invitations;
pub mod sessions;
pub mod sign_in_policy;
pub mod sso;
pub mod throttle;
pub mod users;
