//! What the benchmark programs share: scratch databases, the docker CLI, child processes,
//! and the load generators (oha, and an exact open-loop one).

pub mod load;
pub mod process;
pub mod seed;
pub mod shared;
