//! What ids and names a runtime manager accepts from its caller. Everything else is refused
//! before it reaches Docker's API (where an id is part of a URL path) or the disk (where the
//! container name is a directory under the configuration root).

/// `rt-` and a workspace name: lower-case letters, digits and single dashes, starting and
/// ending with a letter or digit, at most 60 long (a DNS label with the prefix).
pub fn runtime_id(text: &str) -> bool {
    text.strip_prefix("rt-").is_some_and(|name| {
        (1..=60).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    })
}

/// An opaque id (an installation, a user, a configuration hash): ASCII letters, digits and
/// dashes, 1–64 long. A UUID is one.
pub fn label(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A node's name (a hostname): letters, digits, dots and dashes, 1–253 long.
pub fn node(text: &str) -> bool {
    (1..=253).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !text.starts_with(['-', '.'])
        && !text.contains("..")
}

/// An image reference: `name[:tag][@digest]` in Docker's characters, no path tricks.
pub fn image(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b"._-/:@".contains(&b)
                || (b.is_ascii_uppercase() && text.contains(':'))
        })
        && !text.starts_with(['-', '/', '.', ':'])
        && !text.contains("..")
        && !text.contains("//")
}
#[cfg(test)]
mod tests {
    use super as ids;

    #[test]
    fn only_well_shaped_ids_pass() {
        for good in [
            "rt-alice",
            "rt-a",
            "rt-alice-b-2",
            &format!("rt-{}", "a".repeat(60)),
        ] {
            assert!(ids::runtime_id(good), "{good}");
        }
        for bad in [
            "rt-",
            "alice",
            "rt-../../etc",
            "rt-Alice",
            "rt--a",
            "rt-a-",
            "rt-a/b",
            "rt-a b",
            "rt-a\0",
            &format!("rt-{}", "a".repeat(61)),
        ] {
            assert!(!ids::runtime_id(bad), "{bad}");
        }
        assert!(ids::node("clsw-w1") && ids::node("node-3.example.com"));
        for bad in [
            "",
            "../x",
            "a/b",
            "-a",
            ".a",
            "a..b",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(!ids::node(bad), "{bad}");
        }
        for good in [
            "clawloops/runtime-stub:0.1.0",
            "clawloops/openclaw:2026.9.6",
            "registry.example.com:5000/team/img@sha256:0123abcd",
        ] {
            assert!(ids::image(good), "{good}");
        }
        for bad in ["", "../x", "/x", "-x", "a//b", "a b", "a\nb", "a..b"] {
            assert!(!ids::image(bad), "{bad}");
        }
        assert!(ids::label("67e55044-10b1-426f-9247-bb680e5fe0c8"));
        for bad in ["", "../x", "a/b", "a.b", "a b", &"a".repeat(65)] {
            assert!(!ids::label(bad), "{bad}");
        }
    }
}
