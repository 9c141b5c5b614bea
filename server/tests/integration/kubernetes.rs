//! The control plane with runtimes on Kubernetes (the in-test API server, Pods as containers on
//! the local Docker engine) behind a real Traefik with forward-auth: each user's runtime is a
//! Pod reachable only by its owner, reaching the model gateway through the entry proxy's
//! Service address; the cluster's refusals reach the card as plain words and the admin page
//! as the API server's.

use crate::support::card_until;
use crate::support::entry::{Entry, json_of};
use crate::support::kubernetes::RUNTIMES_NAMESPACE;
use sqlx::PgPool;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// The API server's words for a start beyond the namespace's quota.
const QUOTA_MESSAGE: &str = "pods \"clawloops-rt-carol\" is forbidden: exceeded quota: runtimes, \
     requested: limits.memory=512Mi, used: limits.memory=1Gi, limited: limits.memory=1Gi";

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn runtimes_on_kubernetes_answer_only_their_owners_and_refusals_are_plain_words(
    pool: PgPool,
) {
    let entry = Entry::start_kubernetes(pool.clone()).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    for (user, name) in [(&alice, "alice"), (&bob, "bob")] {
        entry
            .start_runtime(user, name, Duration::from_secs(90))
            .await;
    }

    // One Pod per user, labelled with this installation, on the cluster's node.
    let pods = entry.pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let nodes: Vec<Option<String>> =
        sqlx::query_scalar("SELECT node FROM runtimes ORDER BY username")
            .fetch_all(&pool)
            .await
            .expect("nodes");
    assert_eq!(
        nodes,
        vec![Some("kubesim-node-1".to_owned()); 2],
        "the node each Pod runs on is recorded"
    );

    // Each workspace answers its owner with the owner's identity and refuses the other user
    // and a visitor without a session.
    let raw = entry.raw_client();
    for (owner, name, other) in [(&alice, "alice", &bob), (&bob, "bob", &alice)] {
        let res = owner
            .client
            .get(entry.url(name, "/echo"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{name}");
        let echo = json_of(res).await;
        assert_eq!(
            echo["headers"]["x-forwarded-user"],
            serde_json::json!([name]),
            "{echo}"
        );
        let res = other
            .client
            .get(entry.url(name, "/echo"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "another user on {name}");
        let res = raw
            .get(entry.url(name, "/echo"))
            .send()
            .await
            .expect("request");
        assert!(
            res.status().is_redirection() || res.status() == 401,
            "a visitor on {name}: {}",
            res.status()
        );
    }

    // The runtime reaches the model gateway at the entry proxy's Service address (the
    // gateway asks for a key), and its configuration names that address.
    let entry_ip = entry_service_ip(&entry);
    let gateway = format!("http://{entry_ip}:8001/v1/models");
    let outcome = probe(&entry, "alice", &gateway).await;
    assert!(outcome.contains("http 401"), "{outcome}");

    // A start beyond the namespace's quota: the owner reads plain words and a reference,
    // never the API server's message; the admin list carries it with the remedy.
    let carol = entry.user(&admin, "carol").await;
    entry
        .on_kube()
        .refuse("create", "pods", 403, "Forbidden", QUOTA_MESSAGE, 1);
    let (status, card) = carol.call("runtime/command", &[("command", "start")]).await;
    assert_eq!(status, 200, "{card}");
    let card = card_until(&carol, "the refusal", MINUTE, |c| {
        c["task_status"] == "failed"
    })
    .await;
    assert_eq!(card["problem"]["code"], "QUOTA_EXCEEDED", "{card}");
    assert_eq!(
        card["problem"]["message"],
        "There is no room left for your runtime in the team's share of the cluster.",
        "{card}"
    );
    assert!(!card.to_string().contains("exceeded quota"), "{card}");
    let reference = card["problem"]["reference"].as_str().expect("reference");
    let (status, list) = admin.call("admin/runtimes/list", &[]).await;
    assert_eq!(status, 200, "{list}");
    let row = list
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["username"] == "carol"))
        .expect("carol's runtime");
    assert_eq!(row["card"]["problem"]["reference"], reference);
    let detail = row["problem_detail"].as_str().expect("detail for admins");
    assert!(
        detail.contains("exceeded quota: runtimes") && detail.contains("ResourceQuota"),
        "{detail}"
    );
    let alice_row = list
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["username"] == "alice"))
        .expect("alice's runtime");
    assert_eq!(alice_row["node"], "kubesim-node-1", "{alice_row}");

    // With room again, the next start succeeds; a stop removes the Pod and the route and
    // keeps the workspace claim.
    entry
        .start_runtime(&carol, "carol", Duration::from_secs(90))
        .await;
    let (status, card) = alice.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(status, 200, "{card}");
    entry.wait_unrouted(&alice.client, "alice").await;
    card_until(&alice, "stopped", MINUTE, |c| c["observed"] == "stopped").await;
    let pods: Vec<String> = entry
        .pods()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["labels"]["org.clawloops.runtime"].as_str())
        .map(str::to_owned)
        .collect();
    assert_eq!(pods.len(), 2, "bob's and carol's Pods remain: {pods:?}");
    assert!(!pods.contains(&"rt-alice".to_owned()), "{pods:?}");
    let claims = entry
        .on_kube()
        .objects("persistentvolumeclaims", RUNTIMES_NAMESPACE);
    assert_eq!(claims.len(), 3, "every workspace claim is kept");
    entry.finish();
}

/// The entry proxy's Service address, as the runtimes were given it.
fn entry_service_ip(entry: &Entry) -> String {
    use crate::support::kubernetes::{ENTRY_NAMESPACE, ENTRY_SERVICE};
    let service = entry
        .on_kube()
        .object("services", ENTRY_NAMESPACE, ENTRY_SERVICE)
        .expect("the entry Service");
    service["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP")
        .to_owned()
}

/// Probes `target` from inside `user`'s runtime Pod (off the test's thread: the control plane
/// answering the probe runs on it).
async fn probe(entry: &Entry, user: &str, target: &str) -> String {
    let pod = entry
        .pods()
        .into_iter()
        .find(|p| p["metadata"]["labels"]["org.clawloops.runtime"] == format!("rt-{user}"))
        .expect("the runtime's pod");
    let name = pod["metadata"]["name"].as_str().expect("name");
    let container = entry
        .on_kube()
        .container_of(RUNTIMES_NAMESPACE, name)
        .expect("a container");
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || {
        let args = [
            "exec",
            &container,
            "/runtime-stub",
            "probe",
            "5000",
            &target,
        ];
        crate::support::entry::docker(&args).1
    })
    .await
    .expect("probe")
}
