//! The two single sign-on addresses: `/auth/sso/{id}/start` (off to the provider) and
//! `/auth/sso/{id}/callback` (back from it). Both are plain GETs a browser follows; every
//! refusal lands on the sign-in page with a code it turns into words (`?sso_error=`).

use super::ServerState;
use app::ssr::identity::auth::{AuthSession, ClientInfo};
use app::ssr::identity::sso::{self, Callback, Finished, Refusal};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::cookie::{Cookie, SameSite};

/// The cookie binding a sign-in to the browser that started it.
pub const STATE_COOKIE: &str = "clawloops_sso";
/// Where that cookie is sent: the callback only.
const COOKIE_PATH: &str = "/auth/sso";

#[derive(Debug, serde::Deserialize)]
pub struct StartQuery {
    /// A local path to land on afterwards (the sign-in page's `next`).
    next: Option<String>,
}

/// Off to the provider (302), or back to the sign-in page with why not (303).
pub async fn start(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    Extension(client): Extension<ClientInfo>,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(provider) = state.app.sso().get(&id) else {
        return unknown(&id);
    };
    match sso::start(&state.app, &provider, &client, query.next).await {
        Ok(started) => {
            let mut response = Redirect::to(&started.authorize_url).into_response();
            let cookie = state_cookie_header(started.state, 600, state.cookie_secure);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(refusal) => to_login(&id, refusal),
    }
}

/// Back from the provider: signed in (303 to where the person was going), a link to confirm,
/// or the sign-in page with why not. The state cookie is cleared either way.
pub async fn callback(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    Extension(client): Extension<ClientInfo>,
    mut auth: AuthSession,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(provider) = state.app.sso().get(&id) else {
        return unknown(&id);
    };
    let browser_state = state_cookie(&headers);
    let outcome = sso::finish(
        &state.app,
        &provider,
        &mut auth,
        &client,
        answer,
        browser_state,
    )
    .await;
    let mut response = match outcome {
        Ok(Finished::SignedIn { return_to }) => Redirect::to(&return_to).into_response(),
        Ok(Finished::LinkNeeded { token }) => {
            Redirect::to(&format!("/sso/link?token={token}")).into_response()
        }
        Err(refusal) => to_login(&id, refusal),
    };
    let clear = state_cookie_header(String::new(), 0, state.cookie_secure);
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

/// `Set-Cookie` for the state cookie: HttpOnly, SameSite=Lax (sent on the provider's
/// top-level redirect back), only to the callback's path.
fn state_cookie_header(value: String, max_age_secs: i64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((STATE_COOKIE, value))
        .path(COOKIE_PATH)
        .max_age(time::Duration::seconds(max_age_secs))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The state cookie's value, when the browser sent one.
fn state_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == STATE_COOKIE)
        .map(|c| c.value().to_owned())
}

fn to_login(id: &str, refusal: Refusal) -> Response {
    Redirect::to(&format!(
        "/login?sso_error={}&provider={id}",
        refusal.code()
    ))
    .into_response()
}

fn unknown(id: &str) -> Response {
    let id: String = id
        .chars()
        .take(40)
        .filter(char::is_ascii_alphanumeric)
        .collect();
    (
        StatusCode::NOT_FOUND,
        format!("No single sign-on provider is called {id}."),
    )
        .into_response()
}
