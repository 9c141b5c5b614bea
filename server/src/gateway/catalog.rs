//! What the gateway knows without asking the database on each request: the enabled models with
//! their opened credentials, and each key's caller (user, limits, models it may use). Both are
//! dropped when the database says something changed (`clawloops_gateway`).

use super::error::ApiError;
use clawloops_models::Sealer;
use clawloops_models::budget::Period;
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// One enabled model.
pub struct Model {
    pub id: Uuid,
    pub alias: String,
    /// The upstream's base URL without a trailing slash (ends in `/v1`).
    pub base_url: String,
    pub upstream_model: String,
    pub credential: Option<SecretString>,
    pub price_in_micro: i64,
    pub price_out_micro: i64,
    pub context_window: Option<i32>,
    pub fallback: Option<Uuid>,
    pub created: i64,
}

impl Model {
    /// What planning a request needs to know of the model.
    pub fn bounds(&self) -> clawloops_wire::request::ModelBounds {
        clawloops_wire::request::ModelBounds {
            context_window: self.context_window.map(i64::from),
            price_in_micro: self.price_in_micro,
            price_out_micro: self.price_out_micro,
        }
    }
}

/// The enabled models, by alias and by id.
#[derive(Default)]
pub struct Registry {
    by_alias: HashMap<String, Arc<Model>>,
    by_id: HashMap<Uuid, Arc<Model>>,
    /// Every opened credential, to scrub them out of anything passed back.
    pub secrets: Vec<SecretString>,
}

impl Registry {
    pub async fn load(pool: &sqlx::PgPool, sealer: &Sealer) -> Result<Registry, sqlx::Error> {
        let rows = clawloops_models::registry::enabled(pool).await?;
        let mut registry = Registry::default();
        for row in rows {
            let credential = match &row.credential {
                Some((id, sealed)) => {
                    match sealer.open(clawloops_models::seal::CREDENTIAL, *id, sealed) {
                        Ok(secret) => Some(secret),
                        Err(err) => {
                            tracing::error!(model = %row.alias, error = %err, "cannot open the model's credential; requests to it will fail upstream");
                            None
                        }
                    }
                }
                None => None,
            };
            if let Some(secret) = &credential {
                registry.secrets.push(secret.clone());
            }
            let model = Arc::new(Model {
                id: row.id,
                alias: row.alias.clone(),
                base_url: row.base_url.trim_end_matches('/').to_owned(),
                upstream_model: row.upstream_model,
                credential,
                price_in_micro: row.price_input_micro,
                price_out_micro: row.price_output_micro,
                context_window: row.context_window,
                fallback: row.fallback_id,
                created: row.created_at.unix_timestamp(),
            });
            registry.by_id.insert(row.id, model.clone());
            registry.by_alias.insert(row.alias, model);
        }
        Ok(registry)
    }

    pub fn by_alias(&self, alias: &str) -> Option<&Arc<Model>> {
        self.by_alias.get(alias)
    }

    pub fn by_id(&self, id: Uuid) -> Option<&Arc<Model>> {
        self.by_id.get(&id)
    }
}

/// A user's limits (none set: unlimited).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_tokens: Option<i64>,
    /// Nano-dollars.
    pub budget_cost_nano: Option<i64>,
    pub period: Period,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.budget_tokens.is_some()
            || self.budget_cost_nano.is_some()
    }
}

/// What a key refused by the runaway-agent breaker is told.
pub fn paused_message(words: &str, resume_after: Option<OffsetDateTime>) -> String {
    let when = resume_after.map_or_else(String::new, |at| {
        format!(" from {:02}:{:02} UTC", at.hour(), at.minute())
    });
    format!(
        "The runaway-agent breaker paused this account's agent: {words}. Its owner can resume it on the ClawLoops dashboard{when}, or an administrator at once."
    )
}

/// Who a key belongs to and what it may do.
pub struct Caller {
    pub key_id: Uuid,
    pub runtime_key: bool,
    pub user_id: Uuid,
    pub username: String,
    pub expires_at: Option<OffsetDateTime>,
    /// Why every request with this key is refused (revoked, suspended, disabled).
    pub refused: Option<&'static str>,
    /// Why the runaway-agent breaker refuses this key now (its owner's trip is open).
    pub paused: Option<String>,
    pub models: HashSet<Uuid>,
    pub limits: Limits,
}

impl Caller {
    /// The key's caller, or `None` for a key that does not exist.
    pub async fn load(pool: &sqlx::PgPool, hash: &[u8]) -> Result<Option<Caller>, sqlx::Error> {
        let Some(row) = clawloops_models::keys::holder(pool, hash).await? else {
            return Ok(None);
        };
        let refused = if row.revoked_at.is_some() {
            Some(match row.revoked_reason.as_deref() {
                Some("rotated") => "This runtime key was replaced by a newer one.",
                _ => "This API key was revoked.",
            })
        } else if row.status != "active" {
            Some("This API key's account is disabled.")
        } else if row.keys_suspended_at.is_some() {
            Some("This account's API keys are suspended by an administrator.")
        } else {
            None
        };
        let paused = row
            .trip_words
            .as_deref()
            .filter(|_| row.kind == "runtime" || row.breaker_personal)
            .map(|words| paused_message(words, row.trip_resume_after));
        let models = clawloops_models::registry::granted_ids(pool, row.user_id)
            .await?
            .into_iter()
            .collect();
        Ok(Some(Caller {
            key_id: row.id,
            runtime_key: row.kind == "runtime",
            user_id: row.user_id,
            username: row.username,
            expires_at: row.expires_at,
            refused,
            paused,
            models,
            limits: Limits {
                rpm: row.rpm.map(i64::from),
                tpm: row.tpm.map(i64::from),
                budget_tokens: row.budget_tokens,
                budget_cost_nano: row.budget_usd_micro.map(|m| m.saturating_mul(1000)),
                period: row
                    .budget_period
                    .as_deref()
                    .and_then(Period::parse)
                    .unwrap_or_default(),
            },
        }))
    }

    /// Refuses a key that may not be used now.
    pub fn check(&self, now: OffsetDateTime) -> Result<(), ApiError> {
        if let Some(reason) = self.refused {
            return Err(ApiError::bad_key(reason));
        }
        if let Some(reason) = &self.paused {
            return Err(ApiError::paused(reason.clone()));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::bad_key("This API key has expired."));
        }
        Ok(())
    }
}
