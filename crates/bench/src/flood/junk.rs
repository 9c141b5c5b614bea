//! The flood itself: made-up keys and session ids sent open-loop at a fixed rate, with the
//! lookups the code before made on the main pool beside them.

use super::*;

/// Sends (or, for the shared-pool phase, looks up directly) `rate` made-up credentials a
/// second until told to stop.
#[expect(
    clippy::too_many_arguments,
    reason = "one flood, described by its parts"
)]
pub(super) async fn flood_until(
    flood: Flood,
    rate: u32,
    outstanding: usize,
    client: reqwest::Client,
    addr: SocketAddr,
    pool: sqlx::PgPool,
    count: Arc<FloodCount>,
    stop: Arc<tokio::sync::Notify>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(outstanding));
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut issued = 0u64;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "seconds × rate: positive and far below u64::MAX"
        )]
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while issued < due {
            issued += 1;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                count.not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            count.sent.fetch_add(1, Ordering::Relaxed);
            let (client, pool, count) = (client.clone(), pool.clone(), count.clone());
            let at_gateway = issued.is_multiple_of(2);
            tokio::spawn(async move {
                let status = match flood {
                    Flood::OwnPools => send_junk(&client, addr, at_gateway, true).await,
                    _ => {
                        let (sent, looked_up) = tokio::join!(
                            send_junk(&client, addr, at_gateway, false),
                            look_up_junk(&pool, at_gateway)
                        );
                        sent.and(looked_up)
                    }
                };
                let counter = match status {
                    Some(401) => &count.refused_401,
                    Some(503) => &count.busy_503,
                    _ => &count.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(slot);
            });
        }
    }
    // The last requests finish (or time out) before the next phase.
    let _ = slots
        .acquire_many(u32::try_from(outstanding).unwrap_or(u32::MAX))
        .await;
}

/// A key of the right shape (`clk_` and 43 base64url characters) that nobody was given.
pub(super) fn random_key() -> String {
    let random = [
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    ];
    let letters: String = random.iter().map(|u| u.simple().to_string()).collect();
    format!("clk_{}", &letters[..43])
}

/// One made-up credential over HTTP: a key at the gateway or a session id at forward-auth;
/// `well_formed` false: of the wrong shape, refused without a lookup.
pub(super) async fn send_junk(
    client: &reqwest::Client,
    addr: SocketAddr,
    at_gateway: bool,
    well_formed: bool,
) -> Option<u16> {
    let res = if at_gateway {
        let mut key = random_key();
        if !well_formed {
            key.replace_range(..4, "xyz_");
        }
        client
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth(key)
            .send()
            .await
    } else {
        let mut session = tower_sessions::session::Id::default().to_string();
        if !well_formed {
            session.push('!');
        }
        client
            .get(format!("http://{addr}/internal/entry/auth"))
            .header(
                "x-forwarded-host",
                format!("bench.{DOMAIN}:{}", addr.port()),
            )
            .header("cookie", format!("clawloops_session={session}"))
            .send()
            .await
    };
    res.ok().map(|r| r.status().as_u16())
}

/// The lookup the code before this change made for one made-up credential, on the main pool.
/// A forward-auth refusal for an unknown session is 401, as is the gateway's for a key.
pub(super) async fn look_up_junk(pool: &sqlx::PgPool, at_gateway: bool) -> Option<u16> {
    let found = if at_gateway {
        let hash = clawloops_models::keys::hash(&random_key());
        sqlx::query(
            "SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id \
             LEFT JOIN user_limits l ON l.user_id = k.user_id WHERE k.hash = $1",
        )
        .bind(hash.as_slice())
        .fetch_optional(pool)
        .await
    } else {
        sqlx::query(
            "SELECT u.id FROM sessions s JOIN users u ON u.id = s.user_id \
             LEFT JOIN runtimes r ON r.user_id = u.id WHERE s.id = $1",
        )
        .bind(tower_sessions::session::Id::default().to_string())
        .fetch_optional(pool)
        .await
    };
    match found {
        Ok(_) => Some(401),
        Err(sqlx::Error::PoolTimedOut) => Some(503),
        Err(_) => None,
    }
}
