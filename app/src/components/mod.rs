//! Reusable pieces of the interface.

pub mod auth;
pub mod breaker;
pub mod budget;
pub mod chart;
pub mod form;
pub mod format;
pub mod layout;
pub mod replicas;
pub mod runtime;
pub mod status;
pub mod theme;
pub mod ui;
