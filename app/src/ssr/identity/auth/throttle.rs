//! Sign-in throttling that an attacker feels and a team does not (after OWASP's
//! authentication and credential-stuffing guidance): slow down, never lock anyone out for
//! everyone.
//!
//! Three counters, all in PostgreSQL (so every replica sees the same), each with exponential
//! back-off (30 s doubling to 15 minutes) once past its free allowance:
//!
//! - **one account from one address** ([`PAIR_FREE`] failures): the usual guessing. Only that
//!   account from that address waits; the holder signs in from anywhere else, and everyone
//!   else from the same address (a team behind one NAT) is not touched.
//! - **one address trying many accounts** ([`ADDRESS_ACCOUNTS`] different usernames failing
//!   within the hour): password spraying and credential stuffing. The address waits, for every
//!   account. Failures on one account never count more than once here.
//! - **one account from many addresses** ([`ACCOUNT_FAILURES`] failures within the hour): a
//!   distributed attack. Only addresses the account never signed in from wait, so its holder's
//!   usual addresses keep working.
//!
//! Addresses are grouped the way attackers get them: an IPv4 address, or an IPv6 /64 (one
//! customer's network; spraying walks the low bits). A right password clears that account's
//! counter for that address and removes the account from the address's list; the other
//! accounts the address failed on still count. Locked attempts are refused before the password
//! is checked (same answer and time whether the account exists or not), and every lock that
//! starts is written to the audit log with its reason.

use crate::ssr::identity::repo::throttle as db;
use sqlx::PgPool;
use std::net::IpAddr;
use time::OffsetDateTime;

/// Failures of one account from one address before back-off starts.
pub const PAIR_FREE: i64 = 5;
/// Different usernames failing from one address within the hour before it is slowed down.
pub const ADDRESS_ACCOUNTS: i64 = 20;
/// Failures of one account, from all addresses together, within the hour before unknown
/// addresses are slowed down.
pub const ACCOUNT_FAILURES: i64 = 50;

/// What a lock covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One account from one address.
    AccountFromAddress,
    /// One address, whatever the account.
    Address,
    /// One account from addresses it never signed in from.
    AccountFromNewAddresses,
}

impl Scope {
    /// The audit log's word for the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AccountFromAddress => "account_from_address",
            Scope::Address => "address",
            Scope::AccountFromNewAddresses => "account_from_new_addresses",
        }
    }

    /// Why the lock exists, in words for the audit log.
    pub fn reason(self, group: &str) -> String {
        match self {
            Scope::AccountFromAddress => format!(
                "{PAIR_FREE} or more wrong passwords for this account from {group}: sign-ins to it \
                 from there wait"
            ),
            Scope::Address => format!(
                "{ADDRESS_ACCOUNTS} or more different accounts failed from {group} within the hour: \
                 every sign-in from there waits"
            ),
            Scope::AccountFromNewAddresses => format!(
                "{ACCOUNT_FAILURES} or more wrong passwords for this account within the hour from \
                 many addresses: sign-ins from addresses it never used wait"
            ),
        }
    }
}

/// A lock in force, or one that has just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub scope: Scope,
    pub until: OffsetDateTime,
}

impl Lock {
    /// Whole seconds until it opens (at least 1).
    pub fn retry_after_secs(&self) -> i64 {
        (self.until - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1)
    }
}

/// The counters one sign-in attempt touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The address group (`203.0.113.7`, `2001:db8:1:2::/64`, or `unknown`).
    pub group: String,
    pub pair: String,
    pub address: Option<String>,
    pub account: String,
}

impl Keys {
    /// The keys for `username` (already normalised) signing in from `addr`.
    pub fn new(username: &str, addr: Option<&str>) -> Keys {
        let group = addr.map(address_group);
        Keys {
            pair: format!("pair:{username}|{}", group.as_deref().unwrap_or("unknown")),
            address: group.as_ref().map(|g| format!("addr:{g}")),
            account: format!("user:{username}"),
            group: group.unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// An address as a throttling group: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64.
/// Text that is not an address is its own group.
pub fn address_group(addr: &str) -> String {
    match addr.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{}/64", std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        Err(_) => addr.trim().to_owned(),
    }
}

/// The lock that refuses this attempt now, if any.
pub async fn locked(pool: &PgPool, username: &str, keys: &Keys) -> sqlx::Result<Option<Lock>> {
    let mut checks = vec![(Scope::AccountFromAddress, keys.pair.clone())];
    if let Some(address) = &keys.address {
        checks.push((Scope::Address, address.clone()));
    }
    // Looked up for every attempt (existing account or not), so timing tells nothing.
    if !db::known_source(pool, username, &keys.group).await? {
        checks.push((Scope::AccountFromNewAddresses, keys.account.clone()));
    }
    let mut found: Option<Lock> = None;
    for (scope, key) in checks {
        if let Some(until) = db::locked_until(pool, std::slice::from_ref(&key)).await?
            && found.as_ref().is_none_or(|f| until > f.until)
        {
            found = Some(Lock { scope, until });
        }
    }
    Ok(found)
}

/// Counts a failed attempt; returns the locks it started.
pub async fn failed(pool: &PgPool, username: &str, keys: &Keys) -> sqlx::Result<Vec<Lock>> {
    let mut conn = pool.acquire().await?;
    let mut started = Vec::new();
    let pair = i64::from(db::record_failure(&mut *conn, &keys.pair).await?);
    let mut counts = vec![(
        Scope::AccountFromAddress,
        keys.pair.as_str(),
        pair,
        PAIR_FREE,
    )];
    let distinct;
    if let Some(address) = &keys.address {
        distinct = db::record_address_failure(&mut conn, &keys.group, username).await?;
        // The address key's own row carries its lock (its failure count is not used).
        db::record_failure(&mut *conn, address).await?;
        counts.push((Scope::Address, address.as_str(), distinct, ADDRESS_ACCOUNTS));
    }
    let account = i64::from(db::record_failure(&mut *conn, &keys.account).await?);
    counts.push((
        Scope::AccountFromNewAddresses,
        keys.account.as_str(),
        account,
        ACCOUNT_FAILURES,
    ));
    for (scope, key, count, free) in counts {
        let secs = db::back_off(count, free);
        if secs > 0 {
            db::lock(&mut *conn, key, secs).await?;
            started.push(Lock {
                scope,
                until: OffsetDateTime::now_utc() + time::Duration::seconds(secs),
            });
        }
    }
    Ok(started)
}

/// A right password: this account's counter for this address is cleared, the address no
/// longer holds this account against itself, and the address becomes a known one.
pub async fn succeeded(pool: &PgPool, username: &str, keys: &Keys) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    db::clear(&mut *tx, &keys.pair).await?;
    db::forget_address_failure(&mut *tx, &keys.group, username).await?;
    db::remember_source(&mut *tx, username, &keys.group).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_64_and_ipv4_by_address() {
        assert_eq!(address_group("203.0.113.7"), "203.0.113.7");
        assert_eq!(address_group("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(address_group("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_group("2001:db8:1:2:ffff:ffff:ffff:fffe"),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            address_group("2001:db8:1:3::1"),
            address_group("2001:db8:1:2::1")
        );
        assert_eq!(address_group(" not-an-ip "), "not-an-ip");
    }

    #[test]
    fn keys_separate_the_account_the_address_and_the_pair() {
        let keys = Keys::new("alice", Some("2001:db8::5"));
        assert_eq!(keys.pair, "pair:alice|2001:db8::/64");
        assert_eq!(keys.address.as_deref(), Some("addr:2001:db8::/64"));
        assert_eq!(keys.account, "user:alice");
        let unknown = Keys::new("alice", None);
        assert_eq!(unknown.pair, "pair:alice|unknown");
        assert_eq!(unknown.address, None);
    }

    #[test]
    fn each_scope_starts_late_and_backs_off() {
        assert_eq!(db::back_off(PAIR_FREE - 1, PAIR_FREE), 0);
        assert_eq!(db::back_off(PAIR_FREE, PAIR_FREE), db::FIRST_LOCK_SECS);
        assert_eq!(
            db::back_off(PAIR_FREE + 1, PAIR_FREE),
            2 * db::FIRST_LOCK_SECS
        );
        assert_eq!(db::back_off(ADDRESS_ACCOUNTS - 1, ADDRESS_ACCOUNTS), 0);
        assert_eq!(db::back_off(10_000, ACCOUNT_FAILURES), db::MAX_LOCK_SECS);
        assert!(Scope::Address.reason("203.0.113.7").contains("203.0.113.7"));
    }
}
