//! The model domain's data: the registry (models, who may see them, the credentials they use),
//! gateway keys, per-user limits and budgets, the gateway's quota windows, and usage — the repositories the control plane's
//! pages, the gateway and the orchestrator share (so what a user sees, what the gateway allows
//! and what a runtime is given agree) — and the sealer for secrets at rest.

pub mod breaker;
pub mod budget;
pub mod catalog;
pub mod compute;
pub mod keys;
pub mod limits;
pub mod quota;
pub mod registry;
pub mod seal;
pub mod usage;

pub use seal::{SealError, Sealer};
