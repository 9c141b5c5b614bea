//! One reconciler at a time across every control-plane replica.
//!
//! The leader is whoever holds a session-level advisory lock on a connection of its own. The
//! lock lives exactly as long as that database session, so the session is the leader's lease:
//! - a replica killed outright: its socket closes, PostgreSQL ends the session and frees the lock
//!   at once, and a follower (trying every second) takes over;
//! - a replica paused or cut off: the session runs with `idle_session_timeout`,
//!   `idle_in_transaction_session_timeout` and `statement_timeout` set to the lease, so
//!   PostgreSQL itself ends a session that has been silent that long. The leader speaks on it
//!   at least every third of the lease;
//! - every database write the reconciler makes goes over that same session, so a leader whose
//!   session was ended cannot write anything after another has started: its writes are fenced by
//!   construction. Before each change to the engine it asks the session once more.

use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;

/// The advisory lock's two keys: 0x434c ("CL") and the reconciler's number.
const LOCK: (i32, i32) = (17228, 1);

/// A dedicated database session that may hold the reconciler's lock.
pub struct Session {
    conn: PgConnection,
    leading: bool,
}

impl Session {
    /// A new session for campaigning, with the lease as its silence timeouts.
    pub async fn open(pool: &PgPool, lease: Duration) -> sqlx::Result<Session> {
        let options = pool
            .connect_options()
            .as_ref()
            .clone()
            .application_name("clawloops-leader");
        let mut conn = PgConnection::connect_with(&options).await?;
        let ms = lease.as_millis().to_string();
        for setting in [
            "idle_session_timeout",
            "idle_in_transaction_session_timeout",
            "statement_timeout",
        ] {
            sqlx::query_scalar!(r#"SELECT set_config($1, $2, false) AS "v!""#, setting, ms)
                .fetch_one(&mut conn)
                .await?;
        }
        Ok(Session {
            conn,
            leading: false,
        })
    }

    /// Takes the lock when it is free; true while this session leads.
    pub async fn try_lead(&mut self) -> sqlx::Result<bool> {
        if !self.leading {
            self.leading = sqlx::query_scalar!(
                r#"SELECT pg_try_advisory_lock($1, $2) AS "got!""#,
                LOCK.0,
                LOCK.1
            )
            .fetch_one(&mut self.conn)
            .await?;
        }
        Ok(self.leading)
    }

    /// Asks the session whether it is still there (and with it the lock); also keeps it from
    /// being ended for silence.
    pub async fn check(&mut self) -> sqlx::Result<()> {
        still_there(&mut self.conn).await
    }

    /// The session's connection: the leader's writes go over it.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Gives the lock back at once (a replica shutting down) and closes the session.
    pub async fn resign(mut self) {
        if self.leading {
            let _ = sqlx::query_scalar!(
                r#"SELECT pg_advisory_unlock($1, $2) AS "released!""#,
                LOCK.0,
                LOCK.1
            )
            .fetch_one(&mut self.conn)
            .await;
        }
        let _ = self.conn.close().await;
    }
}

/// Fails when the session behind `conn` was ended (and with it any lock it held).
pub async fn still_there(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(conn)
        .await?;
    Ok(())
}
