//! `runtime-stub probe TIMEOUT_MS TARGET…`: what a runtime can reach, tried from inside its
//! container (the lockdown tests `docker exec` it). A target is `ADDRESS:PORT` (a TCP connect)
//! or `http://ADDRESS:PORT/PATH` (a GET; the answer's status is reported). IPv6 link-local
//! addresses may name the interface (`[fe80::1%eth0]:80`). Prints one JSON object per line:
//! `{"target": …, "outcome": "connected" | "http 401" | "refused" | "timeout" | "unreachable: …"}`.
//! With `PROBE_WAIT_FOR_ADDRESS` set, a source address that is not usable yet (a fresh IPv6
//! link-local address still in duplicate detection) is waited for within the timeout.

use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Tries every target at once and prints the outcomes in the order given.
pub async fn run(timeout_ms: u64, targets: Vec<String>) {
    let limit = Duration::from_millis(timeout_ms);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in targets.into_iter().enumerate() {
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(limit, attempt(&target))
                .await
                .unwrap_or_else(|_| "timeout".to_owned());
            (index, target, outcome)
        });
    }
    let mut results = tasks.join_all().await;
    results.sort_by_key(|(index, _, _)| *index);
    for (_, target, outcome) in results {
        println!("{}", json!({ "target": target, "outcome": outcome }));
    }
}

/// Whether `url` (`http://ADDRESS:PORT/PATH`) answers 200 within two seconds.
pub async fn ready(url: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(2), attempt(url))
        .await
        .is_ok_and(|outcome| outcome == "http 200")
}

async fn attempt(target: &str) -> String {
    let (address, path) = match target.strip_prefix("http://") {
        Some(rest) => match rest.split_once('/') {
            Some((address, path)) => (address, Some(format!("/{path}"))),
            None => (rest, Some("/".to_owned())),
        },
        None => (target, None),
    };
    let address = match socket_address(address) {
        Ok(address) => address,
        Err(err) => return format!("unreachable: {err}"),
    };
    let wait = std::env::var_os("PROBE_WAIT_FOR_ADDRESS").is_some();
    let mut stream = loop {
        match TcpStream::connect(address).await {
            Ok(stream) => break stream,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return "refused".to_owned();
            }
            Err(err) if wait && err.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return format!("unreachable: {err}"),
        }
    };
    let Some(path) = path else {
        return "connected".to_owned();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if let Err(err) = stream.write_all(request.as_bytes()).await {
        return format!("connected, then: {err}");
    }
    let mut head = vec![0u8; 64];
    match stream.read(&mut head).await {
        Ok(n) => {
            let text = String::from_utf8_lossy(&head[..n]);
            match text.split_whitespace().nth(1) {
                Some(code) => format!("http {code}"),
                None => "connected, no HTTP answer".to_owned(),
            }
        }
        Err(err) => format!("connected, then: {err}"),
    }
}

/// `ADDRESS:PORT`, with an interface name as an IPv6 scope replaced by its index.
fn socket_address(text: &str) -> Result<SocketAddr, String> {
    let resolved = match text.split_once('%') {
        Some((head, rest)) => {
            let (interface, tail) = rest.split_once(']').ok_or("a scope needs [addr%if]:port")?;
            let index = std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
                .map_err(|e| format!("interface {interface}: {e}"))?;
            format!("{head}%{}]{tail}", index.trim())
        }
        None => text.to_owned(),
    };
    resolved.parse().map_err(|e| format!("{text}: {e}"))
}
