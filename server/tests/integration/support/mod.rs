//! The server's test harness: a real server on 127.0.0.1:0 over a test database
//! ([`TestServer`]), a cookie-keeping client that calls server functions ([`Browser`]), and the
//! control plane behind a real Traefik ([`entry`]). Engine-, proxy- and upstream-level parts
//! come from `clawloops-testkit`.

pub mod entry;
pub mod kubernetes;
pub mod swarm;

pub use clawloops_testkit::{litellm, upstream};

use app::ssr::identity::bootstrap::{self, InitialPassword};
use clawloops_server::{http, serve, settings::Settings};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

/// A running server on 127.0.0.1:0, backed by `pool`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub pool: PgPool,
    /// A client without cookies.
    pub client: reqwest::Client,
    /// The server's state (tests reach the entry gate and the orchestrator through it).
    pub state: http::ServerState,
    /// The HTTP server and the background tasks, stopped when the test's server is dropped so
    /// that nothing of it (connections, listeners) outlives the test.
    tasks: Vec<tokio::task::AbortHandle>,
    /// The installation id that labels this server's Docker objects.
    pub instance: uuid::Uuid,
    /// The server's data directory (secret key, runtime configurations), removed at the end.
    data_dir: std::path::PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.state.gateway.abort();
        // A failed assertion skips the test's own clean-up: leave no container behind.
        if std::thread::panicking() {
            clawloops_testkit::remove_installation(&self.instance.to_string());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Runtimes with the tiny stub image (fast to start, little memory).
pub fn use_stub_runtimes(settings: &mut Settings) {
    settings.runtime.profile = clawloops_server::settings::RuntimeProfile::Stub;
    settings.runtime.image = clawloops_testkit::stub_image();
    settings.runtime.memory_mb = 128;
    settings.runtime.ready_timeout_secs = 30;
}

impl TestServer {
    pub async fn start(pool: PgPool) -> TestServer {
        Self::start_with(pool, |_| {}).await
    }

    /// Starts with runtimes on the tiny stub image (fast, a few MB each).
    pub async fn with_stub_runtimes(pool: PgPool) -> TestServer {
        Self::start_with(pool, use_stub_runtimes).await
    }

    /// Removes every Docker object this server's installation made.
    pub fn remove_docker_objects(&self) {
        clawloops_testkit::remove_installation(&self.instance.to_string());
    }

    /// Starts with settings adjusted by `adjust`.
    pub async fn start_with(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> TestServer {
        Self::start_on(pool, "127.0.0.1".parse().expect("ip"), adjust).await
    }

    /// Starts on `ip` (the Docker bridge's address, for an entry proxy in a container).
    pub async fn start_on(
        pool: PgPool,
        ip: std::net::IpAddr,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        // `TEST_LOG=debug` shows the server's log lines for a failing test.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .with_thread_names(true)
                .try_init();
        }
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let mut settings = Settings::load(None).expect("default settings");
        settings.listen_addr = addr;
        settings.public_url = format!("http://{addr}").parse().expect("url");
        settings.data_dir = std::env::temp_dir().join(format!("clawloops-test-{}", addr.port()));
        settings.secret_key_file = settings.data_dir.join("secret.key");
        adjust(&mut settings);
        // A server whose database is unreachable (the readiness test) still starts; its
        // runtimes are then labelled with a throwaway installation id.
        let instance = serve::instance_id(&pool)
            .await
            .unwrap_or_else(|_| uuid::Uuid::new_v4());
        let state = serve::server_state(&settings, pool.clone(), instance)
            .await
            .expect("server state");
        // The orchestrator's workers and reconciler and the entry gate's tasks, as in
        // `clawloops serve`.
        let mut tasks: Vec<_> = serve::spawn_background(&state)
            .iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .collect();
        let served = state.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                http::router(served).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("server runs");
        });
        tasks.push(server.abort_handle());
        TestServer {
            addr,
            pool,
            client: reqwest::Client::new(),
            state,
            tasks,
            instance,
            data_dir: settings.data_dir.clone(),
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

    /// A browser-like client: keeps cookies, follows no redirects.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar,
            base: format!("http://{}", self.addr),
        }
    }

    /// Creates an admin with [`PASSWORD`] (no forced change).
    pub async fn make_admin(&self, name: &str) {
        bootstrap::create_admin(
            &self.pool,
            name,
            InitialPassword::Given(PASSWORD.into()),
            "test",
        )
        .await
        .expect("admin created");
    }

    /// A signed-in admin browser.
    pub async fn admin(&self, name: &str) -> Browser {
        self.make_admin(name).await;
        let browser = self.browser();
        browser.login_ok(name, PASSWORD).await;
        browser
    }

    /// Invites `name` as a plain user and accepts the invitation in a new browser.
    pub async fn user(&self, admin: &Browser, name: &str) -> Browser {
        join(admin, self.browser(), name).await
    }
}

/// `admin` invites `name` as a plain user; `guest` accepts and is signed in as them.
pub async fn join(admin: &Browser, guest: Browser, name: &str) -> Browser {
    let token = admin.invite(&[("form[role]", "user")]).await;
    let (status, body) = guest
        .call(
            "invitations/accept",
            &[
                ("token", &token),
                ("username", name),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "accept: {body}");
    guest
}

/// Waits until `check` holds for the browser's runtime card (`within` at most).
pub async fn card_until(
    browser: &Browser,
    what: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, card) = browser.call("runtime/mine", &[]).await;
        if check(&card) {
            return card;
        }
        assert!(Instant::now() < deadline, "never {what}: {card}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A client with its own cookie jar.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    /// Calls a server function with a form body; returns status and JSON (or text as a string).
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/api/{endpoint}", self.base))
            .form(form)
            .send()
            .await
            .expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Calls a server function taking one `form` argument: `defaults`, with `overrides` in
    /// place of (or beside) them, each sent as `form[<name>]`.
    pub async fn call_form(
        &self,
        endpoint: &str,
        defaults: &[(&str, &str)],
        overrides: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut fields: Vec<(&str, &str)> = defaults.to_vec();
        for (k, v) in overrides {
            fields.retain(|(key, _)| key != k);
            fields.push((k, v));
        }
        let named: Vec<(String, &str)> = fields
            .into_iter()
            .map(|(k, v)| (format!("form[{k}]"), v))
            .collect();
        let borrowed: Vec<(&str, &str)> = named.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.call(endpoint, &borrowed).await
    }

    pub async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        self.call("auth/login", &[("username", name), ("password", password)])
            .await
    }

    pub async fn login_ok(&self, name: &str, password: &str) {
        let (status, body) = self.login(name, password).await;
        assert_eq!(status, StatusCode::OK, "login {name}: {body}");
    }

    /// Creates an invitation with defaults overridden by `fields`; returns the link's token.
    pub async fn invite(&self, fields: &[(&str, &str)]) -> String {
        let (status, body) = self.try_invite(fields).await;
        assert_eq!(status, StatusCode::OK, "create invitation: {body}");
        let link = body["link"].as_str().expect("link");
        link.rsplit('/').next().expect("token").to_owned()
    }

    pub async fn try_invite(&self, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = vec![
            ("form[role]", "user"),
            ("form[username]", ""),
            ("form[email]", ""),
            ("form[note]", ""),
            ("form[expires_in_hours]", "24"),
        ];
        for (k, v) in fields {
            match form.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v,
                None => form.push((k, v)),
            }
        }
        self.call("admin/invitations/create", &form).await
    }

    /// The session cookie's value.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("clawloops_session="))
            .map(str::to_owned)
    }

    /// Replaces the session cookie (to replay an old one).
    pub fn set_session_cookie(&self, value: &str) {
        let url = self.base.parse().expect("url");
        self.jar
            .add_cookie_str(&format!("clawloops_session={value}; Path=/"), &url);
    }

    pub async fn me(&self) -> (StatusCode, Value) {
        self.call("auth/me", &[]).await
    }

    /// The id of user `name` (this browser must be an admin's).
    pub async fn user_id(&self, name: &str) -> String {
        let (_, list) = self
            .call(
                "admin/users/list",
                &[("query[search]", name), ("query[page]", "1")],
            )
            .await;
        list["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["username"] == name))
            .and_then(|r| r["id"].as_str())
            .expect("user listed")
            .to_owned()
    }
}

/// The `code` of an error body.
pub fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

/// Log output collected in memory.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Every log line of this test binary (from the first call on), to scan for secrets.
pub fn captured_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(Logs);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=warn,hyper=info,reqwest=debug")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}
