//! The registry: the enabled models as the gateway serves them, and what one user may use
//! (the `user_models` view decides visibility).

/// The aliases of the enabled models the user may use, the default first.
pub async fn visible_aliases(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT m.alias FROM user_models um JOIN models m ON m.id = um.model_id
         WHERE um.user_id = $1 ORDER BY m.is_default DESC, m.alias",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// An enabled model the user may use, as their models page lists it.
#[derive(Debug, Clone)]
pub struct VisibleModel {
    pub alias: String,
    pub is_default: bool,
    pub context_window: Option<i32>,
    pub price_input_micro: i64,
    pub price_output_micro: i64,
}

/// The enabled models the user may use, the default first.
pub async fn visible_models(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
) -> Result<Vec<VisibleModel>, sqlx::Error> {
    sqlx::query_as!(
        VisibleModel,
        "SELECT m.alias, m.is_default, m.context_window, m.price_input_micro, m.price_output_micro
         FROM user_models um JOIN models m ON m.id = um.model_id
         WHERE um.user_id = $1 ORDER BY m.is_default DESC, m.alias",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// An enabled model as the gateway serves it, with its credential still sealed.
#[derive(Debug, Clone)]
pub struct EnabledModel {
    pub id: uuid::Uuid,
    pub alias: String,
    pub base_url: String,
    pub upstream_model: String,
    pub price_input_micro: i64,
    pub price_output_micro: i64,
    pub context_window: Option<i32>,
    pub fallback_id: Option<uuid::Uuid>,
    pub created_at: time::OffsetDateTime,
    /// The credential's id and sealed secret, when the model has one.
    pub credential: Option<(uuid::Uuid, Vec<u8>)>,
}

/// Every enabled model.
pub async fn enabled(pool: &sqlx::PgPool) -> Result<Vec<EnabledModel>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.alias, m.base_url, m.upstream_model, m.price_input_micro,
                  m.price_output_micro, m.context_window, m.fallback_id, m.created_at,
                  c.id AS "credential_id?", c.sealed AS "sealed?"
           FROM models m LEFT JOIN provider_credentials c ON c.id = m.credential_id
           WHERE m.enabled"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| EnabledModel {
            id: row.id,
            alias: row.alias,
            base_url: row.base_url,
            upstream_model: row.upstream_model,
            price_input_micro: row.price_input_micro,
            price_output_micro: row.price_output_micro,
            context_window: row.context_window,
            fallback_id: row.fallback_id,
            created_at: row.created_at,
            credential: row.credential_id.zip(row.sealed),
        })
        .collect())
}

/// The ids of the enabled models the user may use.
pub async fn granted_ids(
    pool: &sqlx::PgPool,
    user_id: uuid::Uuid,
) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT model_id AS "model_id!" FROM user_models WHERE user_id = $1"#,
        user_id
    )
    .fetch_all(pool)
    .await
}
