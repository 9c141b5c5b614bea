//! The installation's key, the same on every replica: read from `secret_key` or its file (made
//! on first start when neither exists: the single-node default), and checked against the
//! fingerprint the first replica recorded in the database.

use crate::settings::Settings;
use anyhow::Context;
use secrecy::ExposeSecret;

/// What the fingerprint is derived for (HMAC under the key: it reveals nothing of the key).
const FINGERPRINT_PURPOSE: &str = "installation-key-fingerprint";

/// The key from `secret_key`, else from `secret_key_file` (made when missing).
pub fn load_key(settings: &Settings) -> anyhow::Result<clawloops_models::Sealer> {
    match &settings.secret_key {
        Some(text) => clawloops_models::Sealer::from_base64(text.expose_secret())
            .context("reading the secret key from secret_key (CLAWLOOPS_SECRET_KEY)"),
        None => Ok(clawloops_models::Sealer::load_or_create(
            &settings.secret_key_file,
        )?),
    }
}

/// A short public name for the key: the first 8 bytes of its fingerprint purpose, in hex.
pub fn fingerprint(sealer: &clawloops_models::Sealer) -> String {
    use std::fmt::Write;
    sealer.derive(FINGERPRINT_PURPOSE)[..8]
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Records the key's fingerprint when this is the installation's first start; refuses a key
/// whose fingerprint differs from the one recorded (another replica's, or a lost key's).
pub async fn check_key(
    pool: &sqlx::PgPool,
    sealer: &clawloops_models::Sealer,
) -> anyhow::Result<()> {
    let mine = fingerprint(sealer);
    let recorded: Option<String> = sqlx::query_scalar!(
        "UPDATE instance SET key_fingerprint = coalesce(key_fingerprint, $1)
          RETURNING key_fingerprint",
        mine
    )
    .fetch_one(pool)
    .await
    .context("recording the installation key's fingerprint")?;
    match recorded {
        Some(recorded) if recorded != mine => anyhow::bail!(
            "this replica's secret key (fingerprint {mine}) is not the installation's key \
             (fingerprint {recorded}, recorded when the installation first started). Every \
             replica must use the same key: give this one the other replicas' secret_key_file \
             or CLAWLOOPS_SECRET_KEY. A new key cannot open the provider and runtime keys \
             sealed with the old one."
        ),
        _ => Ok(()),
    }
}
