//! Small things the scenarios share: a seeded dice, a fresh installation key, a client that
//! finds `.localhost` names.

/// A seed from `REPLICA_SEED` (to repeat a run) or the clock; printed by every scenario.
pub fn seed() -> u64 {
    let seed = std::env::var("REPLICA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
        });
    eprintln!("seed {seed} (repeat with REPLICA_SEED={seed})");
    seed
}

/// A small deterministic generator (xorshift) for the scenarios' choices.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    /// One of `0..n`.
    pub fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }
}

/// A client that finds `hosts` at `ip` (the C library does not resolve `.localhost`).
pub fn client(ip: std::net::IpAddr, hosts: &[&str]) -> reqwest::ClientBuilder {
    hosts
        .iter()
        .fold(reqwest::Client::builder().no_proxy(), |b, host| {
            b.resolve(host, std::net::SocketAddr::new(ip, 0))
        })
}

/// A 256-bit key, base64 (what `CLAWLOOPS_SECRET_KEY` takes).
pub fn new_key() -> String {
    use base64::Engine as _;
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
