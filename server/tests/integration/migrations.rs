//! The migrations apply to an empty database, are idempotent, and keep their invariants.

use clawloops_server::database::MIGRATOR;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn migrations_apply_to_an_empty_database_and_rerun_as_no_ops(pool: PgPool) {
    MIGRATOR.run(&pool).await.expect("first run");
    MIGRATOR.run(&pool).await.expect("second run is a no-op");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        applied,
        i64::try_from(MIGRATOR.iter().count()).expect("fits")
    );

    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM instance")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(instances, 1, "exactly one instance row");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn there_can_be_only_one_instance(pool: PgPool) {
    let err = sqlx::query("INSERT INTO instance DEFAULT VALUES")
        .execute(&pool)
        .await
        .expect_err("a second instance row must be refused");
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.constraint(), Some("instance_singleton_key"));
}
