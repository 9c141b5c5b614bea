//! The `Origin`, `Referer` and `Host` of a state-changing request: reading them never panics,
//! an opaque (`null`) origin is never ours, and a site is ours only when it is the public
//! origin or names the very host the request was addressed to.
#![no_main]

use clawloops_wire::edge::{Claimed, claimed_origin, is_own_origin};
use libfuzzer_sys::fuzz_target;

const PUBLIC: &str = "https://claw.example.com";

fuzz_target!(|input: (Option<&str>, Option<&str>, Option<&str>)| {
    let (origin, referer, host) = input;
    match claimed_origin(origin, referer) {
        Claimed::Site(site) => {
            assert_ne!(site, "null");
            if is_own_origin(&site, PUBLIC, host) && site != PUBLIC {
                // Exactly `http(s)://` + the Host the request was addressed to.
                let authority = site
                    .strip_prefix("https://")
                    .or_else(|| site.strip_prefix("http://"))
                    .unwrap_or_else(|| panic!("{site} taken as ours"));
                assert!(
                    authority.eq_ignore_ascii_case(host.unwrap_or_default()),
                    "{site} taken as {host:?}"
                );
            }
        }
        Claimed::Opaque => assert!(!is_own_origin("null", PUBLIC, host)),
        Claimed::Unstated => assert!(origin.is_none() && referer.is_none()),
    }
});
