//! The registry's tables as the admin pages change them: models (with who may see them) and the
//! provider credentials they use. What one user may use is [`crate::registry`]'s.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A registered model, with its credential's and fallback's names and, when visible to named
/// users only, their usernames.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub id: Uuid,
    pub alias: String,
    pub upstream_kind: String,
    pub base_url: String,
    pub upstream_model: String,
    pub credential_id: Option<Uuid>,
    pub credential_name: Option<String>,
    pub enabled: bool,
    pub visibility: String,
    pub visible_roles: Vec<String>,
    pub is_default: bool,
    pub price_input_micro: i64,
    pub price_output_micro: i64,
    pub context_window: Option<i32>,
    pub fallback_id: Option<Uuid>,
    pub fallback_alias: Option<String>,
    pub visible_users: Vec<String>,
}

/// Every model, the default first.
pub async fn models(conn: &mut PgConnection) -> sqlx::Result<Vec<ModelRow>> {
    sqlx::query_as!(
        ModelRow,
        r#"SELECT m.id, m.alias, m.upstream_kind, m.base_url, m.upstream_model, m.credential_id,
                  c.name AS "credential_name?", m.enabled, m.visibility, m.visible_roles,
                  m.is_default, m.price_input_micro, m.price_output_micro, m.context_window,
                  m.fallback_id, f.alias AS "fallback_alias?",
                  ARRAY(SELECT u.username FROM model_users mu JOIN users u ON u.id = mu.user_id
                        WHERE mu.model_id = m.id ORDER BY u.username) AS "visible_users!"
           FROM models m
           LEFT JOIN provider_credentials c ON c.id = m.credential_id
           LEFT JOIN models f ON f.id = m.fallback_id
           ORDER BY m.is_default DESC, m.alias"#
    )
    .fetch_all(conn)
    .await
}

/// What a model is saved with.
#[derive(Debug, Clone, Copy)]
pub struct ModelFields<'a> {
    pub alias: &'a str,
    pub upstream_kind: &'a str,
    pub base_url: &'a str,
    pub upstream_model: &'a str,
    pub credential: Option<Uuid>,
    pub enabled: bool,
    pub visibility: &'a str,
    pub visible_roles: &'a [String],
    pub is_default: bool,
    pub price_input_micro: i64,
    pub price_output_micro: i64,
    pub context_window: Option<i32>,
    pub fallback: Option<Uuid>,
}

/// A new model; its id.
pub async fn insert_model(conn: &mut PgConnection, m: &ModelFields<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO models (alias, upstream_kind, base_url, upstream_model, credential_id, enabled,
             visibility, visible_roles, is_default, price_input_micro, price_output_micro,
             context_window, fallback_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        m.alias,
        m.upstream_kind,
        m.base_url,
        m.upstream_model,
        m.credential,
        m.enabled,
        m.visibility,
        m.visible_roles,
        m.is_default,
        m.price_input_micro,
        m.price_output_micro,
        m.context_window,
        m.fallback
    )
    .fetch_one(conn)
    .await
}

/// Changes model `id`; None when there is no such model.
pub async fn update_model(
    conn: &mut PgConnection,
    id: Uuid,
    m: &ModelFields<'_>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE models SET alias = $2, upstream_kind = $3, base_url = $4, upstream_model = $5,
             credential_id = $6, enabled = $7, visibility = $8, visible_roles = $9,
             is_default = $10, price_input_micro = $11, price_output_micro = $12,
             context_window = $13, fallback_id = $14, updated_at = now()
         WHERE id = $1 RETURNING id",
        id,
        m.alias,
        m.upstream_kind,
        m.base_url,
        m.upstream_model,
        m.credential,
        m.enabled,
        m.visibility,
        m.visible_roles,
        m.is_default,
        m.price_input_micro,
        m.price_output_micro,
        m.context_window,
        m.fallback
    )
    .fetch_optional(conn)
    .await
}

/// No model but `keep` is the default any more.
pub async fn clear_other_defaults(conn: &mut PgConnection, keep: Option<Uuid>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE models SET is_default = false WHERE is_default AND id IS DISTINCT FROM $1",
        keep
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether model `id` exists.
pub async fn model_exists(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM models WHERE id = $1) AS "e!""#,
        id
    )
    .fetch_one(conn)
    .await
}

/// The users model `model` is visible to by name: exactly `users`.
pub async fn set_model_users(
    conn: &mut PgConnection,
    model: Uuid,
    users: &[Uuid],
) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM model_users WHERE model_id = $1", model)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO model_users (model_id, user_id) SELECT $1, unnest($2::uuid[])",
        model,
        users
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes model `id`; its alias, or None when there was none.
pub async fn delete_model(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("DELETE FROM models WHERE id = $1 RETURNING alias", id)
        .fetch_optional(conn)
        .await
}

/// A provider credential as admins see it (never its secret).
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: Uuid,
    pub name: String,
    pub hint: String,
    pub verify_url: Option<String>,
    pub verified_at: Option<OffsetDateTime>,
    pub verify_ok: Option<bool>,
    pub verify_message: Option<String>,
    pub created_at: OffsetDateTime,
    /// The aliases of the models that use it.
    pub used_by: Vec<String>,
}

/// Every credential, by name.
pub async fn credentials(conn: &mut PgConnection) -> sqlx::Result<Vec<CredentialRow>> {
    sqlx::query_as!(
        CredentialRow,
        r#"SELECT c.id, c.name, c.hint, c.verify_url, c.verified_at, c.verify_ok, c.verify_message,
                  c.created_at,
                  ARRAY(SELECT m.alias FROM models m WHERE m.credential_id = c.id ORDER BY m.alias) AS "used_by!"
           FROM provider_credentials c ORDER BY c.name"#
    )
    .fetch_all(conn)
    .await
}

/// Whether credential `id` exists.
pub async fn credential_exists(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM provider_credentials WHERE id = $1) AS "e!""#,
        id
    )
    .fetch_one(conn)
    .await
}

/// A new credential, its secret already sealed.
pub struct NewCredential<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub sealed: &'a [u8],
    pub hint: &'a str,
    pub verify_url: Option<&'a str>,
    pub created_by: Uuid,
}

pub async fn insert_credential(conn: &mut PgConnection, c: &NewCredential<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO provider_credentials (id, name, sealed, hint, verify_url, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        c.id,
        c.name,
        c.sealed,
        c.hint,
        c.verify_url,
        c.created_by
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What verifying a credential needs: its sealed secret, its name, and where to try it (its
/// verify URL, else the base URL of the first model that uses it).
pub struct CredentialProbe {
    pub sealed: Vec<u8>,
    pub name: String,
    pub url: Option<String>,
}

pub async fn credential_probe(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<CredentialProbe>> {
    sqlx::query_as!(
        CredentialProbe,
        r#"SELECT c.sealed, c.name, COALESCE(c.verify_url,
               (SELECT m.base_url FROM models m WHERE m.credential_id = c.id ORDER BY m.alias LIMIT 1)) AS url
           FROM provider_credentials c WHERE c.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Records the outcome of a verification.
pub async fn record_verification(
    conn: &mut PgConnection,
    id: Uuid,
    ok: bool,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE provider_credentials SET verified_at = now(), verify_ok = $2, verify_message = $3 WHERE id = $1",
        id,
        ok,
        message
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The aliases of the models using credential `id`, locked until the transaction ends.
pub async fn models_using(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT alias FROM models WHERE credential_id = $1 ORDER BY alias FOR UPDATE",
        id
    )
    .fetch_all(conn)
    .await
}

/// Removes credential `id`; its name, or None when there was none.
pub async fn delete_credential(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "DELETE FROM provider_credentials WHERE id = $1 RETURNING name",
        id
    )
    .fetch_optional(conn)
    .await
}
