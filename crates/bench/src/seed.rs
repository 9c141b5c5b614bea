//! What the gateway is measured with: the `bench` user (with limits, unless asked not to), the
//! fake upstream registered as its default model behind a sealed credential, and a personal key.

use crate::shared::bench_user;
use anyhow::Result;
use std::path::Path;

/// Where the seeded model lives and how the bench user signs in.
pub struct Upstream<'a> {
    /// The upstream's base URL (ends in `/v1`).
    pub base_url: &'a str,
    /// The credential it demands.
    pub key: &'a str,
    /// The `bench` user's password.
    pub password: &'a str,
}

/// Seeds the scratch database (the sealing key in `key_file`, which the server is given too)
/// and answers the key's secret side.
pub async fn gateway_user(
    pool: &sqlx::PgPool,
    key_file: &Path,
    upstream: &Upstream<'_>,
    limits: bool,
) -> Result<clawloops_models::keys::NewKey> {
    let sealer = clawloops_models::Sealer::load_or_create(key_file)?;
    bench_user(pool, upstream.password).await?;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bench'")
        .fetch_one(pool)
        .await?;
    let credential = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO provider_credentials (id, name, sealed, hint) VALUES ($1, 'fake', $2, '…fake')")
        .bind(credential)
        .bind(sealer.seal(clawloops_models::seal::CREDENTIAL, credential, upstream.key)?)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO models (alias, upstream_kind, base_url, upstream_model, credential_id, is_default,
             price_input_micro, price_output_micro)
         VALUES ('fake-model', 'openai-compatible', $1, 'fake-model', $2, true, 150000, 600000)",
    )
    .bind(upstream.base_url)
    .bind(credential)
    .execute(pool)
    .await?;
    if limits {
        sqlx::query(
            "INSERT INTO user_limits (user_id, rpm, tpm, budget_tokens, budget_period)
             VALUES ($1, 1000000, 2000000000, 1000000000000, 'month')",
        )
        .bind(user_id)
        .execute(pool)
        .await?;
    }
    let key = clawloops_models::keys::generate()?;
    sqlx::query("INSERT INTO api_keys (id, user_id, kind, name, prefix, hash) VALUES ($1, $2, 'personal', 'bench', $3, $4)")
        .bind(key.id)
        .bind(user_id)
        .bind(&key.prefix)
        .bind(&key.hash)
        .execute(pool)
        .await?;
    Ok(key)
}
