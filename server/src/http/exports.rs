//! Downloads that are files, not server-function answers: the admin usage CSV.

use super::ServerState;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use leptos::prelude::provide_context;
use leptos::reactive::{computed::ScopedFuture, owner::Owner};

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
    Query(query): Query<CsvQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let app = state.app.clone();
    let filename = format!("clawloops-usage-{}-to-{}.csv", query.from, query.to).replace(
        |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'),
        "",
    );
    let owner = Owner::new();
    let result = owner
        .with(|| {
            ScopedFuture::new(async move {
                provide_context(parts);
                provide_context(app);
                app::ssr::models::usage_csv(&query.from, &query.to, &query.user).await
            })
        })
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
