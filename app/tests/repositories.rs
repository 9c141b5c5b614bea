//! Repository functions against a real PostgreSQL (one database per test).

use app::model::{InvitationStatus, Role, UserStatus};
use app::ssr::audit::repo as audit;
use app::ssr::identity::repo::{
    invitations, sessions, throttle,
    users::{self, NewUser, UserFilter},
};
use app::ssr::paging::Page;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

fn new_user(name: &str) -> NewUser<'_> {
    NewUser {
        username: name,
        email: None,
        role: Role::User,
        password_hash: "x",
        must_change_password: false,
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn usernames_are_unique_and_the_violation_names_its_index(pool: PgPool) {
    users::insert(&pool, new_user("amy")).await.expect("first");
    let err = users::insert(&pool, new_user("amy"))
        .await
        .expect_err("duplicate");
    let constraint = err.as_database_error().and_then(|e| e.constraint());
    assert_eq!(constraint, Some(users::USERNAME_KEY));
    let err = users::insert(&pool, new_user("Amy"))
        .await
        .expect_err("upper case refused");
    assert!(err.to_string().contains("users_username_check"), "{err}");
}

#[sqlx::test(migrations = "../migrations")]
async fn user_lists_filter_count_and_page(pool: PgPool) {
    for name in ["ann", "anna", "bea"] {
        users::insert(&pool, new_user(name)).await.expect("insert");
    }
    let mut conn = pool.acquire().await.expect("conn");
    let filter = UserFilter {
        search: Some("ann".into()),
        ..Default::default()
    };
    let Page { rows, total } = users::list(&mut conn, &filter, 0, 1).await.expect("list");
    assert_eq!(total, 2);
    assert_eq!(rows.len(), 1, "page size 1");
    let Page { rows, total } = users::list(&mut conn, &filter, 5, 10)
        .await
        .expect("past the end");
    assert!(rows.is_empty());
    assert_eq!(total, 2, "the total is right on an empty page too");
    let disabled = UserFilter {
        status: Some(UserStatus::Disabled),
        ..Default::default()
    };
    assert_eq!(
        users::list(&mut conn, &disabled, 0, 10)
            .await
            .expect("list")
            .total,
        0
    );
    assert_eq!(users::counts(&pool).await.expect("counts"), (3, 0));
}

#[sqlx::test(migrations = "../migrations")]
async fn invitation_status_follows_its_timestamps(pool: PgPool) {
    let admin = users::insert(
        &pool,
        NewUser {
            role: Role::Admin,
            ..new_user("root")
        },
    )
    .await
    .expect("admin");
    let now = OffsetDateTime::now_utc();
    let id = invitations::insert(
        &pool,
        invitations::NewInvitation {
            token_hash: b"hash-1",
            role: Role::User,
            username: None,
            email: None,
            note: None,
            created_by: admin.id,
            expires_at: now + Duration::hours(1),
        },
    )
    .await
    .expect("insert");
    let row = invitations::find(&pool, id)
        .await
        .expect("find")
        .expect("row");
    assert_eq!(row.status(now), InvitationStatus::Pending);
    assert_eq!(
        row.status(now + Duration::hours(2)),
        InvitationStatus::Expired
    );
    assert_eq!(row.created_by_name.as_deref(), Some("root"));
    assert_eq!(
        invitations::pending_counts(&pool, 24)
            .await
            .expect("counts"),
        (1, 1)
    );

    invitations::revoke(&pool, id, admin.id)
        .await
        .expect("revoke");
    let row = invitations::find_by_token(&pool, b"hash-1")
        .await
        .expect("find")
        .expect("row");
    assert_eq!(
        row.status(now + Duration::hours(2)),
        InvitationStatus::Revoked,
        "finished stays finished"
    );
    let err = invitations::consume(&pool, id, admin.id)
        .await
        .expect_err("revoked and consumed");
    assert!(
        err.to_string().contains("invitations_single_end_check"),
        "{err}"
    );

    let mut conn = pool.acquire().await.expect("conn");
    let revoked = invitations::list(&mut conn, Some(InvitationStatus::Revoked), 0, 10)
        .await
        .expect("list");
    assert_eq!(revoked.total, 1);
    let pending = invitations::list(&mut conn, Some(InvitationStatus::Pending), 0, 10)
        .await
        .expect("list");
    assert_eq!(pending.total, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn throttling_counts_locks_and_clears(pool: PgPool) {
    let keys = vec!["user:zed".to_owned()];
    for expected in 1..=5 {
        let failures = throttle::record_failure(&pool, "user:zed")
            .await
            .expect("record");
        assert_eq!(failures, expected);
        throttle::apply_lock(&pool, "user:zed", failures)
            .await
            .expect("lock");
    }
    let until = throttle::locked_until(&pool, &keys)
        .await
        .expect("read")
        .expect("locked");
    let secs = (until - OffsetDateTime::now_utc()).whole_seconds();
    assert!((25..=30).contains(&secs), "about 30 s, got {secs}");
    throttle::clear(&pool, "user:zed").await.expect("clear");
    assert!(
        throttle::locked_until(&pool, &keys)
            .await
            .expect("read")
            .is_none()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn sessions_are_listed_and_ended_per_user(pool: PgPool) {
    let amy = users::insert(&pool, new_user("amy")).await.expect("amy");
    let soon = OffsetDateTime::now_utc() + Duration::hours(1);
    for (id, user) in [("s1", Some(amy.id)), ("s2", Some(amy.id)), ("s3", None)] {
        let write = sessions::SessionWrite {
            id,
            user_id: user,
            data: serde_json::json!({}),
            expires_at: soon,
            client_addr: Some("10.0.0.1"),
            user_agent: None,
        };
        assert!(sessions::insert(&pool, &write).await.expect("insert"));
        assert!(
            !sessions::insert(&pool, &write).await.expect("again"),
            "ids never overwritten"
        );
    }
    assert_eq!(
        sessions::list_for_user(&pool, amy.id)
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        sessions::delete_for_user(&pool, amy.id, Some("s1"))
            .await
            .expect("end"),
        1
    );
    assert!(sessions::load(&pool, "s1").await.expect("load").is_some());
    assert!(sessions::load(&pool, "s2").await.expect("load").is_none());
    users::delete(&pool, amy.id).await.expect("delete amy");
    assert!(
        sessions::load(&pool, "s1").await.expect("load").is_none(),
        "gone with the account"
    );
    assert!(sessions::load(&pool, "s3").await.expect("load").is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn audit_events_are_filtered_by_action_family_and_person(pool: PgPool) {
    for (action, subject) in [
        ("login.failed", "amy"),
        ("login.succeeded", "amy"),
        ("user.disabled", "bob"),
    ] {
        audit::record(
            &pool,
            audit::NewAuditEvent {
                action,
                subject_name: Some(subject),
                ..Default::default()
            },
        )
        .await
        .expect("record");
    }
    let mut conn = pool.acquire().await.expect("conn");
    let logins = audit::AuditFilter {
        action_prefix: Some("login".into()),
        ..Default::default()
    };
    assert_eq!(
        audit::list(&mut conn, &logins, 0, 10)
            .await
            .expect("list")
            .total,
        2
    );
    let bob = audit::AuditFilter {
        person: Some("bo".into()),
        ..Default::default()
    };
    let page = audit::list(&mut conn, &bob, 0, 10).await.expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(page.rows[0].action, "user.disabled");
}
