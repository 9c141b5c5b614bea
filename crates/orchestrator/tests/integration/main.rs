//! The orchestrator with the real Docker engine (tiny runtime image) and a real PostgreSQL,
//! one test binary.

mod failures;
mod harness;
mod holds;
mod kubernetes;
mod lifecycle;
mod metering;
mod policies;
mod recovery;
mod replicas;
