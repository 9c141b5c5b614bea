//! The model layer's pieces shared by the control plane's pages, the gateway and the
//! orchestrator: the sealer for secrets at rest, gateway keys, and the registry queries every
//! part reads (so what a user sees, what the gateway allows and what a runtime is given agree).

pub mod keys;
pub mod registry;
pub mod seal;

pub use seal::{SealError, Sealer};
