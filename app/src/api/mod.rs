//! Server functions and the data they return. Each submodule is one area of the app.

pub mod status;
