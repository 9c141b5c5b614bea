//! tower-sessions records in PostgreSQL, with the user id kept in its own column so one
//! person's sessions can be listed and ended together.

use super::keys;
use crate::ssr::identity::repo::sessions::{self, SessionWrite};
use async_trait::async_trait;
use sqlx::PgPool;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use uuid::Uuid;

/// The session store.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    /// A store writing to `pool`.
    pub fn new(pool: PgPool) -> Self {
        PgSessionStore { pool }
    }
}

fn backend(err: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn text<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record.data.get(key).and_then(|v| v.as_str())
}

fn write(record: &Record) -> session_store::Result<(String, SessionWrite<'_>)> {
    let id = record.id.to_string();
    let data = serde_json::to_value(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let user_id = text(record, keys::USER_ID).and_then(|s| Uuid::parse_str(s).ok());
    Ok((
        id,
        SessionWrite {
            id: "",
            user_id,
            data,
            expires_at: record.expiry_date,
            client_addr: text(record, keys::CLIENT_ADDR),
            user_agent: text(record, keys::USER_AGENT),
        },
    ))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let (id, mut row) = write(record)?;
            row.id = &id;
            if sessions::insert(&self.pool, &row).await.map_err(backend)? {
                return Ok(());
            }
            // A 128-bit id collided: astronomically rare, but never overwrite someone else's.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (id, mut row) = write(record)?;
        row.id = &id;
        sessions::upsert(&self.pool, &row).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((data, expiry_date)) = sessions::load(&self.pool, &id.to_string())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_value(data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::delete(&self.pool, &id.to_string())
            .await
            .map_err(backend)
    }
}
