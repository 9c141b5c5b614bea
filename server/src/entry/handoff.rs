//! Workspaces on a site of their own (docs/workspace-site.md). When the session cookie does
//! not reach the workspace hosts (they are under another registrable domain than the control
//! plane), a signed-in person is handed over:
//!
//! 1. The workspace host, without its cookie, sends the browser to the control plane's
//!    `/workspace/handoff?path=…`.
//! 2. There, the session mints a one-time code for its own workspace (a minute) and sends the
//!    browser to `<workspace>/.clawloops/handoff?code=…&path=…`.
//! 3. Forward-auth exchanges the code (once) for a cookie of that host alone and sends the
//!    browser on to `path`. From then on forward-auth reads that cookie; it names the session,
//!    whose checks (active, not expired, owner, running) apply on every request as before.
//!
//! Codes and cookies are 256 random bits, stored as SHA-256, bound to one workspace and one
//! session (and removed with it: sign-out ends them).

use app::ssr::identity::auth::tokens::{hash_token, new_token};
use sqlx::PgPool;

/// The cookie forward-auth reads on a workspace host (host-only: no `Domain`).
pub const COOKIE: &str = "clawloops_ws";
/// The path on a workspace host where a code is exchanged (never passed to the runtime).
pub const PATH: &str = "/.clawloops/handoff";
/// How long a code may wait to be exchanged.
const CODE_SECONDS: i32 = 60;
/// How long a workspace cookie is honoured at most (its session usually ends first): 30 days.
const COOKIE_SECONDS: i32 = 30 * 24 * 3600;

/// Whether `text` has the shape of a code or cookie value (43 base64url characters): anything
/// else is refused without a lookup.
pub fn well_formed(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A path to go on to after the handoff: a same-origin absolute path (not `//host`, no
/// backslash or control character), else `/`.
pub fn safe_path(path: Option<&str>) -> String {
    match path {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 2048
                && !p.chars().any(|c| c == '\\' || c.is_control()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A new one-time code for `session` to enter `workspace`. Expired codes are cleared on the way.
pub async fn mint_code(pool: &PgPool, session: &str, workspace: &str) -> sqlx::Result<String> {
    let (code, hash) = new_token();
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM workspace_passes WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    insert(&mut tx, &hash, "code", session, workspace, CODE_SECONDS).await?;
    tx.commit().await?;
    Ok(code)
}

/// Exchanges a code for a workspace cookie (once): the cookie's value, or `None` when the code
/// is unknown, used, expired or for another workspace.
pub async fn redeem(pool: &PgPool, code: &str, workspace: &str) -> sqlx::Result<Option<String>> {
    let mut tx = pool.begin().await?;
    let session = sqlx::query_scalar!(
        "DELETE FROM workspace_passes
          WHERE token_hash = $1 AND kind = 'code' AND workspace = $2 AND expires_at > now()
         RETURNING session_id",
        hash_token(code),
        workspace
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let (cookie, hash) = new_token();
    insert(
        &mut tx,
        &hash,
        "cookie",
        &session,
        workspace,
        COOKIE_SECONDS,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(cookie))
}

/// Stores a code or cookie (by its hash) for `session` and `workspace`, valid `seconds`.
async fn insert(
    tx: &mut sqlx::PgConnection,
    hash: &[u8],
    kind: &str,
    session: &str,
    workspace: &str,
    seconds: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO workspace_passes (token_hash, kind, session_id, workspace, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        hash,
        kind,
        session,
        workspace,
        f64::from(seconds)
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The session a workspace cookie stands for, if it is one for `workspace` and still valid.
pub async fn session_of(
    pool: &PgPool,
    cookie: &str,
    workspace: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT session_id FROM workspace_passes
          WHERE token_hash = $1 AND kind = 'cookie' AND workspace = $2 AND expires_at > now()",
        hash_token(cookie),
        workspace
    )
    .fetch_optional(pool)
    .await
}

/// The `code` and `path` of a handoff URI's query.
pub fn handoff_query(uri: &str) -> (Option<String>, Option<String>) {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let mut code = None;
    let mut path = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" if code.is_none() => code = Some(value.into_owned()),
            "path" if path.is_none() => path = Some(value.into_owned()),
            _ => {}
        }
    }
    (code, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_followed() {
        assert_eq!(safe_path(Some("/a/b?c=d#e")), "/a/b?c=d#e");
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/\tx",
            "",
        ] {
            assert_eq!(safe_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_path(None), "/");
        assert_eq!(safe_path(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }

    #[test]
    fn codes_are_read_from_the_query_once() {
        let (code, path) = handoff_query("/.clawloops/handoff?code=abc&path=%2Fx%3Fy%3D1&code=zzz");
        assert_eq!(code.as_deref(), Some("abc"));
        assert_eq!(path.as_deref(), Some("/x?y=1"));
        assert_eq!(handoff_query("/.clawloops/handoff"), (None, None));
    }

    #[test]
    fn only_token_shaped_values_are_looked_up() {
        let (token, _) = new_token();
        assert!(well_formed(&token));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}!", &token[..42])));
    }
}
