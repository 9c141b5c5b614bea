//! The driver's integration tests against the real Docker engine, one test binary: the Docker
//! driver itself (`docker`) and split mode, the runtime manager's API in front of it
//! (`remote`). `support` starts fixtures for a fresh installation id each.

mod conformance;
mod docker;
mod kubernetes;
mod manifests;
mod remote;
mod remote_hostile;
mod support;
mod swarm;
