//! Password hashing with argon2id, off the async runtime.

use crate::AppError;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::Semaphore;

/// At most one argon2 computation per CPU at a time (each takes 19 MiB and a core for a good
/// fraction of a second): a burst of sign-ins queues instead of taking all memory and CPU.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// How long a sign-in waits in that queue before it is told to come back.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Runs `work` (an argon2 computation) on the blocking pool once a hashing slot is free, or
/// answers [`AppError::Busy`] when none frees up within [`QUEUE_WAIT`].
async fn with_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    with_slot_within(QUEUE_WAIT, work).await
}

async fn with_slot_within<T: Send + 'static>(
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let _slot = tokio::time::timeout(wait, HASHING.acquire())
        .await
        .map_err(|_| AppError::Busy {
            retry_after_secs: 2,
        })?
        .map_err(crate::ssr::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(crate::ssr::internal)
}

/// A real hash of a random password, verified against when the user does not exist, so an
/// unknown username takes as long to refuse as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking(&super::tokens::one_time_password()).unwrap_or_default());

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&super::tokens::random_bytes::<16>())?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Hashes a password (argon2id, default parameters: 19 MiB, 2 passes).
pub async fn hash(password: String) -> Result<String, AppError> {
    with_slot(move || hash_blocking(&password))
        .await?
        .map_err(crate::ssr::internal)
}

/// Checks a password against a stored hash; with no hash (unknown user) it checks against a
/// dummy and answers `false`, taking the same time. [`AppError::Busy`] when the server is
/// hashing at capacity.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AppError> {
    let known = stored.is_some();
    let matched = with_slot(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await?;
    Ok(known && matched)
}

/// Computes the dummy hash now rather than during the first sign-in.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse battery".into()).await.expect("hash");
        let b = hash("correct horse battery".into()).await.expect("hash");
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"), "{a}");
        let verify = |p: &str, h: Option<String>| verify(p.to_owned(), h);
        assert_eq!(
            verify("correct horse battery", Some(a.clone())).await,
            Ok(true)
        );
        assert_eq!(verify("wrong horse battery", Some(a)).await, Ok(false));
        assert_eq!(
            verify("anything", None).await,
            Ok(false),
            "unknown user never matches"
        );
        assert_eq!(verify("x", Some("garbage".into())).await, Ok(false));
    }

    #[tokio::test]
    async fn hashing_runs_at_most_one_per_cpu_at_a_time() {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..cpus * 3)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(with_slot(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("a slot within the wait");
        }
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            most <= cpus && most >= 1,
            "at most {cpus} at once, saw {most}"
        );

        // Every slot taken and the queue does not move in time: come back later.
        let held = HASHING
            .acquire_many(u32::try_from(cpus).expect("a few CPUs"))
            .await
            .expect("all slots");
        let busy = with_slot_within(Duration::from_millis(50), || ()).await;
        assert_eq!(
            busy,
            Err(AppError::Busy {
                retry_after_secs: 2
            })
        );
        drop(held);
        assert_eq!(
            with_slot_within(Duration::from_millis(50), || 7).await,
            Ok(7)
        );
    }
}
