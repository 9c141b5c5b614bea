//! The `Host` and `Cookie` of a request to a workspace, as any browser (or attacker) may send
//! them: a recognised workspace is one lower-case label directly under the domain, and the
//! session cookie never stays in what is passed on to the runtime.
#![no_main]

use clawloops_wire::edge::{split_cookie, workspace_of};
use libfuzzer_sys::fuzz_target;

const SESSION: &str = "clawloops_session";

fuzz_target!(|input: (&str, &str)| {
    let (host, cookie) = input;
    if let Some(name) = workspace_of(host, "ws.example") {
        assert!(!name.is_empty() && name.len() <= 63);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        let bare = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        assert!(bare.eq_ignore_ascii_case(&format!("{name}.ws.example")));
    }
    let is_id = |v: &str| v.len() == 22 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if let Some((session, rest)) = split_cookie(cookie, SESSION, is_id) {
        assert!(is_id(&session));
        if let Some(rest) = rest {
            assert!(!rest.is_empty());
            for part in rest.split(';') {
                assert!(
                    part.split_once('=').is_none_or(|(n, _)| n.trim() != SESSION),
                    "the session passed on: {rest:?}"
                );
            }
        }
    }
});
