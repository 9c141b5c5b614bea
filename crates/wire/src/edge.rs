//! What the entry reads from a browser's request before anything else: the workspace a host
//! names, the session cookie (taken out of what a runtime receives), and the site a
//! state-changing request says it came from.

/// The workspace name in a host (`alice.clawloops.localhost:8080` → `alice`) when the host is
/// one directly under `domain`: one DNS label of lower-case letters, digits and dashes.
pub fn workspace_of<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let name = host.len().checked_sub(domain.len() + 1).and_then(|cut| {
        let (name, rest) = host.split_at_checked(cut)?;
        let rest = rest.strip_prefix('.')?;
        rest.eq_ignore_ascii_case(domain).then_some(name)
    })?;
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(name)
}

/// The session id from a `Cookie` header (the cookie named `name` whose value passes
/// `is_session_id`), and the header without it: the other well-formed cookies, or `None` when
/// nothing is left. A malformed id counts as no session.
pub fn split_cookie(
    header: &str,
    name: &str,
    is_session_id: impl Fn(&str) -> bool,
) -> Option<(String, Option<String>)> {
    let mut session = None;
    let mut rest: Vec<&str> = Vec::new();
    for part in header.split(';') {
        let part = part.trim();
        match part.split_once('=') {
            Some((cookie, value)) if cookie.trim() == name => {
                let value = value.trim().trim_matches('"');
                if is_session_id(value) {
                    session = Some(value.to_owned());
                }
            }
            _ if !part.is_empty() && cookie::Cookie::parse(part).is_ok() => rest.push(part),
            _ => {}
        }
    }
    let rest = (!rest.is_empty()).then(|| rest.join("; "));
    session.map(|s| (s, rest))
}

/// Where a request says it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// An origin (`scheme://host[:port]`), from `Origin` or else from `Referer`.
    Site(String),
    /// `Origin: null`: a sandboxed frame, a `data:` page, a redirect across sites. Never ours.
    Opaque,
    /// Neither header (a non-browser client).
    Unstated,
}

/// Reads `Origin` (or, without one, `Referer`).
pub fn claimed_origin(origin: Option<&str>, referer: Option<&str>) -> Claimed {
    match origin.map(str::trim) {
        Some("null") => Claimed::Opaque,
        Some(origin) => Claimed::Site(origin.to_owned()),
        None => match referer.map(url::Url::parse) {
            Some(Ok(url)) => match url.origin() {
                url::Origin::Tuple(..) => Claimed::Site(url.origin().ascii_serialization()),
                url::Origin::Opaque(_) => Claimed::Opaque,
            },
            Some(Err(_)) => Claimed::Opaque,
            None => Claimed::Unstated,
        },
    }
}

/// Whether `origin` is this site: the public URL's origin, or the host the request was addressed
/// to (`Host`, with its port).
pub fn is_own_origin(origin: &str, public_origin: &str, host: Option<&str>) -> bool {
    if origin == public_origin {
        return true;
    }
    match (url::Url::parse(origin), host) {
        // Only an origin in the one form browsers send (`scheme://host[:port]`, as serialised):
        // a URL parser is lenient (`https:/host`, a path, user info) where a browser is not.
        (Ok(url), Some(host))
            if matches!(url.scheme(), "http" | "https")
                && url.origin().ascii_serialization() == origin =>
        {
            let Some(name) = url.host_str() else {
                return false;
            };
            let authority = match url.port() {
                Some(port) => format!("{name}:{port}"),
                None => name.to_owned(),
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn null_and_unparsable_origins_are_nobody_we_know() {
        assert_eq!(claimed_origin(Some("null"), None), Claimed::Opaque);
        assert_eq!(
            claimed_origin(Some("null"), Some("https://claw.example.com/x")),
            Claimed::Opaque,
            "a null Origin is not rescued by a Referer"
        );
        assert_eq!(
            claimed_origin(None, Some("data:text/html,x")),
            Claimed::Opaque
        );
        assert_eq!(claimed_origin(None, Some("not a url")), Claimed::Opaque);
        assert_eq!(
            claimed_origin(None, Some("https://claw.example.com/a?b")),
            Claimed::Site("https://claw.example.com".into())
        );
        assert_eq!(claimed_origin(None, None), Claimed::Unstated);
        assert!(!is_own_origin(
            "null",
            "https://claw.example.com",
            Some("null")
        ));
        assert!(!is_own_origin(
            "file:///etc",
            "https://claw.example.com",
            Some("")
        ));
    }

    proptest! {
        /// A recognised workspace name is always a lower-case DNS label, and the host ended in
        /// the domain.
        #[test]
        fn workspace_names_are_single_labels(host in "[a-zA-Z0-9.:-]{0,40}(\\.ws\\.example(:[0-9]{1,5})?)?") {
            if let Some(name) = workspace_of(&host, "ws.example") {
                prop_assert!(!name.is_empty() && name.len() <= 63);
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                let bare = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host.as_str(), |(h, _)| h);
                prop_assert_eq!(bare, format!("{name}.ws.example"));
            }
        }

        /// The session never stays in what is passed on, and what is passed on is cookies only.
        #[test]
        fn the_session_cookie_never_passes_on(parts in proptest::collection::vec("[ -~]{0,24}", 0..6)) {
            let header = parts.join("; ");
            if let Some((session, rest)) = split_cookie(&header, "s", |v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric())) {
                prop_assert!(!session.is_empty());
                if let Some(rest) = rest {
                    for part in rest.split("; ") {
                        prop_assert!(part.split_once('=').is_none_or(|(n, _)| n.trim() != "s"));
                    }
                }
            }
        }
    }
}
