//! What the benchmark programs share: scratch databases, the docker CLI, and the load
//! generators (oha, and an exact open-loop one).

pub mod load;
pub mod shared;
