//! What the registry says about one user (the `user_models` view decides visibility).

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
