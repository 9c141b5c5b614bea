//! The real LiteLLM proxy, installed by `scripts/test.sh` (pinned in
//! deploy/litellm/requirements.lock) and named by `LITELLM_BIN`.

use std::time::Duration;

/// The LiteLLM proxy on a free port of `host`, routing `fake-chat` (with `pricey-chat`, a
/// deployment no ClawLoops model names, and `flaky-chat`, one that always fails) to `upstream` with
/// `provider_key` and taking `master_key`; killed when dropped.
pub struct LiteLlm {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    pub port: u16,
}

impl LiteLlm {
    pub async fn start(
        upstream: &str,
        provider_key: &str,
        master_key: &str,
        host: &str,
    ) -> LiteLlm {
        let bin = std::env::var("LITELLM_BIN").expect(
        "LITELLM_BIN must name the litellm executable: scripts/test.sh installs it (see ensure_litellm)",
    );
        let dir = tempfile::tempdir().expect("dir");
        let config = format!(
            "model_list:\n  - model_name: fake-chat\n    litellm_params:\n      model: openai/ok\n      api_base: {upstream}\n      api_key: {provider_key}\n  - model_name: pricey-chat\n    litellm_params:\n      model: openai/pricey\n      api_base: {upstream}\n      api_key: {provider_key}\n  - model_name: flaky-chat\n    litellm_params:\n      model: openai/fail500\n      api_base: {upstream}\n      api_key: {provider_key}\ngeneral_settings:\n  master_key: {master_key}\n"
        );
        std::fs::write(dir.path().join("config.yaml"), config).expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let log = std::fs::File::create(dir.path().join("litellm.log")).expect("log");
        let mut child = tokio::process::Command::new(bin)
            .args([
                "--config",
                "config.yaml",
                "--host",
                host,
                "--port",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            // LiteLLM would take the tests' database for its own (and try to download Prisma engines).
            .env_remove("DATABASE_URL")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("litellm starts");
        let client = reqwest::Client::new();
        let health = format!("http://127.0.0.1:{port}/health/liveliness");
        for _ in 0..240 {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return LiteLlm {
                    _child: child,
                    _dir: dir,
                    base_url: format!("http://127.0.0.1:{port}/v1"),
                    port,
                };
            }
            if let Ok(Some(exit)) = child.try_wait() {
                panic!(
                    "LiteLLM exited ({exit}): {}",
                    std::fs::read_to_string(dir.path().join("litellm.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "LiteLLM did not become healthy within 120 s: {}",
            std::fs::read_to_string(dir.path().join("litellm.log")).unwrap_or_default()
        );
    }
}
