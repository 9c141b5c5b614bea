//! Runtimes reach nothing but the entry proxy. From inside real runtime containers (the stub
//! image's `probe` mode, started by the real orchestrator behind a real Traefik) every address of
//! this host is tried at the test's own listeners (0.0.0.0 and ::) and at the project's own
//! (control plane, runtime manager, LiteLLM, PostgreSQL where it listens on TCP, Docker's API
//! ports), then the entry proxy's ports and another runtime. Ranges where no host of ours lives
//! (169.254.169.254, other private ranges, public addresses) are checked on the installed
//! rules instead of with packets.

#![cfg(test)]

use crate::support::entry::{Entry, docker};
use crate::support::litellm::LiteLlm;
use clawloops_driver::firewall::{self, BLOCKED_V4, Egress, Firewall, FirewallMode};
use serde_json::Value;
use sqlx::PgPool;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod cases;

/// A listener of the test's own on every address of one family, counting who got through.
struct OwnListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

async fn own_listener(bind: &str) -> OwnListener {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .expect("the test's own listener");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_, peer)) = listener.accept().await {
            eprintln!("own listener on port {port}: connection from {peer}");
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    OwnListener { port, accepted }
}

/// How a probe target is written for an address: IPv6 in brackets, link-local scoped to the
/// runtime's own interface.
fn target(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => format!("[{v6}%eth0]:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Runs the probe inside `container`; target → outcome.
async fn probe(container: &str, targets: &[String]) -> Vec<(String, String)> {
    probe_with(&["exec", container, "/runtime-stub"], targets).await
}

/// Runs the probe with `command` (a `docker exec` or `docker run`); target → outcome. The
/// docker CLI runs off the test's runtime thread, which also serves the control plane.
async fn probe_with(command: &[&str], targets: &[String]) -> Vec<(String, String)> {
    let mut args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["probe".to_owned(), "3000".to_owned()]);
    args.extend(targets.iter().cloned());
    let (ok, out) = tokio::task::spawn_blocking(move || {
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("probe");
    assert!(ok, "probe ran: {out}");
    let results: Vec<(String, String)> = out
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("probe line");
            (
                v["target"].as_str().expect("target").to_owned(),
                v["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect();
    assert_eq!(results.len(), targets.len(), "{out}");
    results
}

/// Nothing answered: refused (the host's reset), timed out (dropped) or unreachable.
fn blocked(outcome: &str) -> bool {
    outcome == "refused" || outcome == "timeout" || outcome.starts_with("unreachable")
}

/// The entry proxy's address on the runtime network of `container`.
fn proxy_ip_for(entry: &Entry, container: &str) -> String {
    let name = docker(&["inspect", "-f", "{{.Name}}", container])
        .1
        .trim_start_matches('/')
        .to_owned();
    let (ok, ip) = docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{name}-net\").IPAddress}}}}"),
        &entry.proxy,
    ]);
    assert!(ok && !ip.is_empty(), "proxy on {name}-net: {ip}");
    ip
}

/// The PostgreSQL port of the tests' database, when it listens on TCP at all (the private
/// cluster `clawloops db up` makes listens on a Unix socket only).
fn postgres_port() -> Option<u16> {
    let url = std::env::var("DATABASE_URL").ok()?;
    let parsed = url::Url::parse(&url).ok()?;
    let host = parsed.host_str().unwrap_or_default();
    let unix = host.is_empty()
        || host.to_ascii_lowercase().starts_with("%2f")
        || parsed
            .query_pairs()
            .any(|(k, v)| k == "host" && v.starts_with('/'));
    (!unix).then(|| parsed.port().unwrap_or(5432))
}

async fn lockdown(pool: PgPool, egress: Egress) {
    let entry = Entry::start_with(pool.clone(), false, move |s| s.runtime.egress = egress).await;
    let v4 = own_listener("0.0.0.0:0").await;
    let v6 = own_listener("[::]:0").await;
    // The project's own listeners, each on every address: a runtime manager (split mode) and
    // LiteLLM. The control plane listens on the Docker host's bridge address.
    let manager = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("manager port");
    let manager_port = manager.local_addr().expect("addr").port();
    let mut manager_settings = clawloops_server::settings::Settings::load(None).expect("settings");
    manager_settings.runtime.firewall = FirewallMode::Managed;
    let manager_data = tempfile::tempdir().expect("tempdir");
    manager_settings.data_dir = manager_data.path().to_path_buf();
    let router = clawloops_server::runtime_manager::router(
        &manager_settings,
        "a-shared-secret-of-at-least-32-characters",
    )
    .await
    .expect("runtime manager");
    tokio::spawn(async move {
        let _ = axum::serve(
            manager,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let litellm = LiteLlm::start(
        "http://127.0.0.1:9/v1",
        "sk-unused",
        "sk-litellm-lockdown",
        "0.0.0.0",
    )
    .await;

    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    entry
        .start_runtime(&bob, "bob", Duration::from_secs(60))
        .await;
    let alice_box = entry.container_of("alice");

    // Every address of this host but loopback (which, inside a container, is the container).
    let host: Vec<IpAddr> = clawloops_driver::host::interface_addresses()
        .expect("addresses")
        .into_iter()
        .map(|(_, ip)| ip)
        .filter(|ip| !ip.is_loopback())
        .collect();
    assert!(
        host.iter()
            .any(|ip| ip.to_string() == entry.server.addr.ip().to_string()),
        "the control plane's address is among the host's: {host:?}"
    );
    let mut ports = vec![
        ("own listener on 0.0.0.0", v4.port),
        ("own listener on ::", v6.port),
        ("control plane", entry.server.addr.port()),
        ("runtime manager", manager_port),
        ("LiteLLM", litellm.port),
        ("Docker API", 2375),
        ("Docker API (TLS)", 2376),
    ];
    if let Some(port) = postgres_port() {
        ports.push(("PostgreSQL", port));
    }
    let mut targets = Vec::new();
    for ip in &host {
        for (_, port) in &ports {
            targets.push(target(*ip, *port));
        }
    }
    let results = probe(&alice_box, &targets).await;
    println!(
        "egress {}: tried {} host addresses × {} ports from alice's runtime",
        egress.as_str(),
        host.len(),
        ports.len()
    );
    for (what, port) in &ports {
        println!("  port {port}: {what}");
    }
    for (target, outcome) in &results {
        println!("  {target:<48} {outcome}");
        assert!(blocked(outcome), "{target} answered a runtime: {outcome}");
    }
    assert_eq!(v4.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(v6.accepted.load(Ordering::SeqCst), 0);
    // The same listeners answer from the host itself: the probes above could have succeeded.
    for port in [
        v4.port,
        v6.port,
        entry.server.addr.port(),
        manager_port,
        litellm.port,
    ] {
        let ip = entry.server.addr.ip();
        tokio::net::TcpStream::connect((ip, port))
            .await
            .unwrap_or_else(|e| panic!("{ip}:{port} answers the host: {e}"));
    }

    // The entry proxy: the model gateway on the runtime entry point (401 without a key is the
    // gateway's own answer), nothing else there, and none of its other ports. Another runtime:
    // nothing.
    let proxy = proxy_ip_for(&entry, &alice_box);
    let bob_ip = entry.runtime_ip("bob");
    let gateway = format!("http://{proxy}:{}/v1/models", firewall::ENTRY_RUNTIME_PORT);
    let pages = format!("http://{proxy}:{}/login", firewall::ENTRY_RUNTIME_PORT);
    let web = format!("{proxy}:8000");
    let ping = format!("{proxy}:8082");
    let other = format!("{bob_ip}:{}", firewall::RUNTIME_PORT);
    let results = probe(&alice_box, &[gateway, pages, web.clone(), ping, other]).await;
    println!("entry proxy and another runtime, from alice's runtime:");
    for (target, outcome) in &results {
        println!("  {target:<48} {outcome}");
    }
    assert_eq!(
        results[0].1, "http 401",
        "the model gateway through the proxy"
    );
    assert_eq!(
        results[1].1, "http 404",
        "no page on the runtime entry point"
    );
    for (target, outcome) in &results[2..] {
        assert!(blocked(outcome), "{target} answered a runtime: {outcome}");
    }
    if egress == Egress::None {
        // Docker re-creates its jump into DOCKER-USER (delete, then insert) whenever it creates
        // a network; rules hooked there had a gap each time, and connections to the proxy's
        // other ports got through. While networks come and go, hundreds of attempts must fail.
        let churn = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let churning = churn.clone();
        let networks = std::thread::spawn(move || {
            let mut made = 0;
            while churning.load(Ordering::SeqCst) && made < 200 {
                let name = format!("clawloops-test-churn-{}-{made}", std::process::id());
                docker(&["network", "create", &name]);
                docker(&["network", "rm", &name]);
                made += 1;
            }
            made
        });
        let attempts: Vec<String> = (0..150).map(|_| web.clone()).collect();
        let mut connected = 0;
        for _ in 0..4 {
            connected += probe(&alice_box, &attempts)
                .await
                .iter()
                .filter(|(_, outcome)| !blocked(outcome))
                .count();
        }
        churn.store(false, Ordering::SeqCst);
        let made = networks.join().expect("network churn");
        println!(
            "  {web}, 600 attempts while {made} networks came and went: {connected} connected"
        );
        assert!(made > 0, "networks were made meanwhile");
        assert_eq!(
            connected, 0,
            "the proxy's web port answered during Docker's rule changes"
        );
    }

    // Ranges no host of ours lives in: the rules as installed.
    let installed = Firewall::new(FirewallMode::Managed)
        .installed()
        .await
        .expect("rules readable");
    let has = |rule: &str| {
        installed
            .iter()
            .any(|l| l == &format!("ipv4 filter {rule}") || l == &format!("ipv4 mangle {rule}"))
    };
    assert!(
        installed.contains(&"ipv4 filter -A INPUT -i clr+ -j CLAWLOOPS-RUNTIMES-IN".to_owned()),
        "{installed:#?}"
    );
    assert!(
        installed.contains(&"ipv4 mangle -A FORWARD -j CLAWLOOPS-RUNTIMES-FWD".to_owned()),
        "forwarded traffic is filtered in the mangle table, where Docker never writes: {installed:#?}"
    );
    assert!(
        !installed.iter().any(|l| l.contains("DOCKER-USER")),
        "{installed:#?}"
    );
    for range in BLOCKED_V4 {
        assert!(
            has(&format!(
                "-A CLAWLOOPS-RUNTIMES-FWD -d {range} -i clrp-+ -j DROP"
            )),
            "{range} blocked for public egress: {installed:#?}"
        );
    }
    assert!(has(
        "-A CLAWLOOPS-RUNTIMES-FWD -i clrp-+ ! -o clr+ -j RETURN"
    ));
    assert_eq!(
        installed
            .iter()
            .rfind(|l| l.starts_with("ipv4 mangle -A CLAWLOOPS-RUNTIMES-FWD"))
            .map(String::as_str),
        Some("ipv4 mangle -A CLAWLOOPS-RUNTIMES-FWD -j DROP"),
        "everything else from a runtime network is dropped"
    );
    // The runtime's network is of its egress class, internal without egress; no IPv6 inside.
    let (_, inspect) = docker(&["inspect", &alice_box]);
    let container: Value = serde_json::from_str(&inspect).expect("inspect");
    assert_eq!(
        container[0]["HostConfig"]["Sysctls"]["net.ipv6.conf.all.disable_ipv6"],
        "1"
    );
    let network = container[0]["HostConfig"]["NetworkMode"]
        .as_str()
        .expect("network")
        .to_owned();
    let (_, inspect) = docker(&["network", "inspect", &network]);
    let net: Value = serde_json::from_str(&inspect).expect("inspect");
    let bridge = net[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .expect("bridge name");
    assert_eq!(bridge, firewall::bridge_name(egress, &network));
    assert_eq!(net[0]["Internal"], egress == Egress::None);

    // IPv6 is off inside runtimes; a container on the same network with IPv6 turned on
    // (Docker 20.10 turns it off in containers of IPv4-only networks) shows the host refuses
    // it too, at the bridge's own link-local address.
    let link_local: Vec<IpAddr> = clawloops_driver::host::interface_addresses()
        .expect("addresses")
        .into_iter()
        .filter(|(iface, ip)| iface == bridge && ip.is_ipv6())
        .map(|(_, ip)| ip)
        .collect();
    assert!(!link_local.is_empty(), "{bridge} has a link-local address");
    let accepted_before = v6.accepted.load(Ordering::SeqCst);
    let targets: Vec<String> = [v6.port, entry.server.addr.port()]
        .iter()
        .map(|port| target(link_local[0], *port))
        .collect();
    let results = probe_with(
        &[
            "run",
            "--rm",
            "--network",
            &network,
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "-e",
            "PROBE_WAIT_FOR_ADDRESS=1",
            "--entrypoint",
            "/runtime-stub",
            &clawloops_testkit::stub_image(),
        ],
        &targets,
    )
    .await;
    println!("IPv6 from a container with IPv6 on, on alice's network:");
    for (target, outcome) in &results {
        println!("  {target:<48} {outcome}");
        assert_eq!(
            outcome, "refused",
            "{target}: the host's reset, nothing else"
        );
    }
    assert_eq!(v6.accepted.load(Ordering::SeqCst), accepted_before);

    entry.finish();
}
