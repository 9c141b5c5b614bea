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
