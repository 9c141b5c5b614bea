//! Server-only parts of the app: the state server functions read, and the glue that turns
//! internal failures into [`AppError`]s.

pub mod admin;
pub mod audit;
pub mod breaker;
pub mod budget;
pub mod identity;
pub mod lifecycle;
pub mod models;
pub mod paging;
pub mod runtimes;
mod state;
pub mod status;

pub use identity::auth::gate::{Access, Caller};
pub use state::{AppConfig, AppState, BuildInfo};

use crate::AppError;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

/// The application state, as provided to every server function and page render.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| internal("AppState missing from the Leptos context"))
}

/// What a server function resolves first, at its edge: the state, and the caller — if they
/// have `access`. The services it then calls take both explicitly.
async fn edge(access: Access) -> Result<(AppState, Caller), AppError> {
    let caller = identity::auth::gate::require(access).await?;
    Ok((app_state()?, caller))
}

/// Logs an internal failure with a fresh reference and returns the browser-safe error.
pub fn internal(cause: impl std::fmt::Display) -> AppError {
    let reference = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    tracing::error!(%reference, error = %cause, "internal error");
    AppError::Internal { reference }
}

/// Parses an id from a request; a malformed one is simply not found.
pub fn parse_id(id: &str, what: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(id.trim()).map_err(|_| AppError::NotFound {
        what: what.to_owned(),
    })
}

/// Runs a server function's work: on error, sets the HTTP status to the error's own
/// (server functions otherwise always answer 500).
pub async fn respond<T>(work: impl Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    let result = work.await;
    if let Err(err) = &result
        && let Some(options) = use_context::<ResponseOptions>()
    {
        options.set_status(
            http::StatusCode::from_u16(err.status())
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        );
        if let Some(secs) = err.retry_after_secs() {
            options.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
    }
    result
}

/// A server function's whole body: resolves the state and the caller for `access` at the
/// edge, hands both to the service, and answers with the error's own status.
pub async fn serve<T>(
    access: Access,
    service: impl AsyncFnOnce(&AppState, &mut Caller) -> Result<T, AppError>,
) -> Result<T, AppError> {
    respond(async {
        let (state, mut caller) = edge(access).await?;
        service(&state, &mut caller).await
    })
    .await
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %err, "database unavailable");
                AppError::Unavailable
            }
            other => internal(other),
        }
    }
}
