//! The signed-in user for every page, and the wrapper that sends people where they belong
//! (sign-in, forced password change, the disabled page, or a 403).

use super::ui::{ErrorNotice, Loading};
use crate::AppError;
use crate::api::auth::{Me, current_user};
use crate::model::Role;
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;

/// The current user, loaded once per page load.
#[derive(Clone, Copy)]
pub struct Auth {
    /// `Ok(None)`: nobody signed in.
    pub me: Resource<Result<Option<Me>, AppError>>,
}

/// Loads the current user and shares it with every component below.
pub fn provide_auth() {
    let me = Resource::new(|| (), |()| current_user());
    provide_context(Auth { me });
}

/// The current user resource.
pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// A local path to return to after signing in; anything else (other sites, `//host`) is
/// replaced by the home page.
pub fn safe_next(next: Option<String>) -> String {
    next.filter(|n| is_local_path(n))
        .unwrap_or_else(|| "/".to_owned())
}

/// A path on this site: one leading `/` not followed by `/` or `\`, and no backslash, control
/// character or whitespace anywhere (browsers drop tabs and line breaks from URLs and read `\`
/// as `/`, so `/\t/evil.example` would become `//evil.example`).
pub fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// Full page load of `path` (after sign-in or sign-out every resource must be fetched again).
pub fn reload_to(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}

/// Shows `children` only to a signed-in user who may see them; everyone else is sent on.
#[component]
pub fn RequireUser(
    /// Admins only; others see a 403 page.
    #[prop(optional)]
    admin: bool,
    /// Let a user who must change their password through (the password page itself).
    #[prop(optional)]
    password_change: bool,
    children: ChildrenFn,
) -> impl IntoView {
    let auth = use_auth();
    let children = StoredValue::new(children);
    let location = use_location();
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match auth.me.await {
                    Err(AppError::UserDisabled) => {
                        view! { <Redirect path="/disabled" /> }.into_any()
                    }
                    Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    Ok(None) => {
                        let here = location.pathname.get_untracked();
                        let target = format!("/login?next={}", urlencode(&here));
                        view! { <Redirect path=target /> }.into_any()
                    }
                    Ok(Some(me)) if me.must_change_password && !password_change => {
                        view! { <Redirect path="/account/password" /> }.into_any()
                    }
                    Ok(Some(me)) if admin && me.role != Role::Admin => {
                        view! { <crate::pages::errors::ForbiddenView /> }.into_any()
                    }
                    Ok(Some(me)) => {
                        provide_context(me);
                        children.with_value(|c| c()).into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Percent-encodes a path for a query parameter.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/admin/users".into())), "/admin/users");
        assert_eq!(safe_next(Some("//evil.example".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example".into())), "/");
        assert_eq!(safe_next(Some("/\\evil.example".into())), "/");
        assert_eq!(safe_next(None), "/");
        // Browsers drop tabs and line breaks: each of these would lead off the site.
        for sneaky in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/\u{0}/evil.example",
            "/a\\..\\\\evil.example",
            "/\u{2028}/evil.example",
        ] {
            assert_eq!(safe_next(Some(sneaky.into())), "/", "{sneaky:?}");
        }
        assert_eq!(safe_next(Some("/usage?days=7".into())), "/usage?days=7");
        assert_eq!(safe_next(Some("/".into())), "/");
    }

    #[test]
    fn paths_are_encoded_for_queries() {
        assert_eq!(urlencode("/admin/users?x=1&y"), "/admin/users%3Fx%3D1%26y");
    }
}
