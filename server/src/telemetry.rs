//! Log output.

use crate::settings::{LogFormat, Settings};
use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global log subscriber (text or JSON lines on stderr). `RUST_LOG`, when set,
/// overrides the `log_level` setting.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // PostgreSQL's NOTICEs ("relation already exists, skipping") are not news.
    let filter = match "sqlx::postgres::notice=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A request path as it may be logged: a secret carried in the path (an invitation's token, or
/// any segment that looks like a token or a key) is replaced by `[redacted]`. The query is never
/// logged.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let mut after_invite = false;
    let mut secret = false;
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let hide = (after_invite && !segment.is_empty()) || looks_secret(segment);
            after_invite = segment == "invite";
            secret |= hide;
            if hide { "[redacted]" } else { segment }
        })
        .collect();
    if secret {
        std::borrow::Cow::Owned(segments.join("/"))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// A gateway key (`clk_…`), a provider key (`sk-…`), or 32 and more characters of a token
/// alphabet (a UUID, which names things rather than granting them, excepted).
fn looks_secret(segment: &str) -> bool {
    let token_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'%')
    };
    if segment.starts_with("clk_") || segment.starts_with("sk-") {
        return true;
    }
    segment.len() >= 32 && token_chars(segment) && uuid::Uuid::try_parse(segment).is_err()
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn secrets_in_paths_are_not_logged() {
        assert_eq!(loggable_path("/invite/abc"), "/invite/[redacted]");
        assert_eq!(loggable_path("/invite/"), "/invite/");
        assert_eq!(
            loggable_path("/x/clk_0123456789abcdef/y"),
            "/x/[redacted]/y"
        );
        assert_eq!(
            loggable_path("/a/Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9v"),
            "/a/[redacted]"
        );
        for plain in [
            "/admin/users",
            "/pkg/clawloops.Ab3dEfGh1jKlMn0pQrStUv.wasm",
            "/admin/runtimes/4f1c2a9e-7b3d-4e8a-9c1f-0a2b3c4d5e6f",
            "/",
        ] {
            assert_eq!(loggable_path(plain), plain);
        }
    }
}
