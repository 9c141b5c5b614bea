//! Downloads that are files, not server-function answers: the admin usage CSV.

use super::ServerState;
use app::ssr::identity::auth::{AuthSession, gate};
use app::ssr::models::usage;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The usage CSV's filters: days `from`..=`to` (`YYYY-MM-DD`), optionally one user by name.
#[derive(Debug, serde::Deserialize)]
pub struct CsvQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    user: String,
}

/// `GET /admin/usage.csv`: every gateway request in the period (admins), as a download.
pub async fn usage_csv(
    State(state): State<ServerState>,
    mut auth: AuthSession,
    Query(query): Query<CsvQuery>,
) -> Response {
    let filename = format!("clawloops-usage-{}-to-{}.csv", query.from, query.to).replace(
        |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'),
        "",
    );
    let policy = state.app.session_policy();
    let result = async {
        gate::check(&mut auth, gate::Access::Admin, policy).await?;
        usage::csv_export(&state.app, &query.from, &query.to, &query.user).await
    }
    .await;
    match result {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            text,
        )
            .into_response(),
        Err(err) => (
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(err),
        )
            .into_response(),
    }
}
