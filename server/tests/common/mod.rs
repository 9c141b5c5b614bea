//! Shared helpers for the server's integration tests.

use clawloops_server::{http, serve, settings::Settings};
use sqlx::PgPool;
use std::net::SocketAddr;

/// A running server on 127.0.0.1:0, backed by `pool`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl TestServer {
    pub async fn start(pool: PgPool) -> TestServer {
        let settings = Settings::load(None).expect("default settings");
        let state = serve::server_state(&settings, pool);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, http::router(state))
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}
