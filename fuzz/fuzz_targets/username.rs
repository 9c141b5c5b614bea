//! What a person types as a username: the result is ASCII, within the length rules, and
//! normalising it again changes nothing (one account per canonical name).
#![no_main]

use clawloops_wire::names::{USERNAME_LEN, normalize_username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(name) = normalize_username(input) {
        assert!(name.is_ascii());
        assert!((USERNAME_LEN.0..=USERNAME_LEN.1).contains(&name.len()));
        assert_eq!(normalize_username(&name).as_deref(), Ok(name.as_str()));
    }
});
