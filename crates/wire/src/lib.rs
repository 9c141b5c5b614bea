//! The vocabulary every box shares ([`runtime`]: runtime states and the problems a user is
//! shown) and pure functions over untrusted input, shared by the server, the dashboard and the
//! fuzz targets (`fuzz/`): what a gateway request may ask an upstream for and what it may cost
//! ([`request`]), the usage read from an upstream's answer or stream ([`usage`]), the entry's
//! reading of hosts, cookies and origins ([`edge`]) and usernames ([`names`]). Nothing here does
//! I/O, so every function can be fuzzed and property-tested as the product calls it.

pub mod edge;
pub mod names;
pub mod request;
pub mod runtime;
pub mod usage;

/// Nano-dollars for a request: tokens times micro-dollars per million tokens. Saturates (a
/// huge request costs "the most there is", never a wrapped negative amount); negative inputs
/// count as zero.
pub fn cost_nano(prompt: i64, completion: i64, price_in_micro: i64, price_out_micro: i64) -> i64 {
    let part = |tokens: i64, price: i64| tokens.max(0).saturating_mul(price.max(0));
    part(prompt, price_in_micro).saturating_add(part(completion, price_out_micro)) / 1000
}

/// A request's worst case (or its real use, when settling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub tokens: i64,
    pub cost_nano: i64,
}
