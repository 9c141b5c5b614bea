//! Several control-plane replicas as separate `clawloops serve` processes on one database:
//! started, killed (`SIGKILL`), paused (`SIGSTOP`/`SIGCONT`) and restarted by the scenarios.

use super::proxy::Proxy;
use super::tools::{client, new_key};
use crate::support::{Browser, PASSWORD, join};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "clawloops.localhost";
/// Short leases, so that the scenarios see takeovers within seconds.
pub const TASK_LEASE_SECS: u64 = 3;
pub const LEADER_LEASE_SECS: u64 = 2;

pub struct Replica {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    /// Settings of this replica alone (`NAME`, value), over the cluster's.
    settings: Vec<(String, String)>,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn base(&self) -> String {
        format!("http://{DOMAIN}:{}", self.port)
    }
}

pub struct Cluster {
    pub pool: PgPool,
    pub instance: String,
    /// Where the replicas listen (loopback, or the Docker host's bridge address for Traefik).
    pub ip: std::net::IpAddr,
    pub proxy: Option<Proxy>,
    database_url: String,
    key: String,
    dir: tempfile::TempDir,
    pub replicas: Vec<Replica>,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Cluster {
    /// `n` replicas on the test's database, all ready.
    pub async fn start(pool: PgPool, n: usize) -> Cluster {
        Self::build(pool, n, false).await
    }

    /// `n` replicas behind Traefik, which load-balances them and health-checks `/readyz`.
    pub async fn behind_traefik(pool: PgPool, n: usize) -> Cluster {
        Self::build(pool, n, true).await
    }

    async fn build(pool: PgPool, n: usize, traefik: bool) -> Cluster {
        let options: PgConnectOptions = pool.connect_options().as_ref().clone();
        let database_url = sqlx::ConnectOptions::to_url_lossy(&options).to_string();
        let instance = clawloops_server::serve::instance_id(&pool)
            .await
            .expect("instance id")
            .to_string();
        let (ip, proxy) = if traefik {
            let ip = clawloops_testkit::entry_proxy::control_plane_ip()
                .await
                .expect("the Docker host's bridge address");
            let proxy = Proxy {
                name: format!(
                    "clawloops-test-lb-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                ),
                port: clawloops_testkit::free_port(),
                config: tempfile::tempdir().expect("tempdir"),
            };
            (ip, Some(proxy))
        } else {
            (std::net::IpAddr::from([127, 0, 0, 1]), None)
        };
        let mut cluster = Cluster {
            pool,
            instance,
            ip,
            proxy,
            database_url,
            key: new_key(),
            dir: tempfile::tempdir().expect("tempdir"),
            replicas: Vec::new(),
            jar: Arc::default(),
        };
        for i in 0..n {
            let port = clawloops_testkit::free_port();
            let log = cluster.dir.path().join(format!("replica-{i}.log"));
            cluster.replicas.push(Replica {
                child: None,
                port,
                log,
                settings: Vec::new(),
            });
            cluster.launch(i, None);
        }
        for i in 0..n {
            cluster.wait_ready(i).await;
        }
        if cluster.proxy.is_some() {
            cluster.start_proxy().await;
        }
        cluster
    }

    /// A `clawloops serve` for replica `i` (its own data directory: nothing is shared through
    /// files), with the cluster's key unless `key` says otherwise.
    pub fn command(&self, i: usize, key: Option<&str>) -> Command {
        let replica = &self.replicas[i];
        let data = self.dir.path().join(format!("data-{i}"));
        let public_port = self
            .proxy
            .as_ref()
            .map_or(self.replicas[0].port, |p| p.port);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawloops"));
        if let Some(proxy) = &self.proxy {
            cmd.env("CLAWLOOPS_ENTRY_PROXY_CONTAINER", &proxy.name)
                .env("CLAWLOOPS_TRUSTED_PROXIES", r#"["172.16.0.0/12"]"#)
                .env(
                    "CLAWLOOPS_RUNTIME_BROWSER_URL",
                    format!("http://{{user}}.{DOMAIN}:{public_port}/"),
                );
        }
        cmd.arg("serve")
            .env("CLAWLOOPS_DATABASE_URL", &self.database_url)
            .env("CLAWLOOPS_LISTEN_ADDR", format!("{}:{}", self.ip, replica.port))
            .env("CLAWLOOPS_PUBLIC_URL", format!("http://{DOMAIN}:{public_port}/"))
            .env("CLAWLOOPS_WORKSPACE_DOMAIN", DOMAIN)
            .env("CLAWLOOPS_DATA_DIR", &data)
            .env("CLAWLOOPS_SECRET_KEY", key.unwrap_or(&self.key))
            .env("CLAWLOOPS_RUNTIME_PROFILE", "stub")
            .env("CLAWLOOPS_RUNTIME_IMAGE", clawloops_testkit::stub_image())
            .env("CLAWLOOPS_RUNTIME_MEMORY_MB", "128")
            // The lockdown tests own the host firewall; these runtimes need none.
            .env("CLAWLOOPS_RUNTIME_FIREWALL", "external")
            .env("CLAWLOOPS_TASK_LEASE_SECS", TASK_LEASE_SECS.to_string())
            .env("CLAWLOOPS_LEADER_LEASE_SECS", LEADER_LEASE_SECS.to_string())
            // Long enough for Traefik's health check (every second) to see a stopping replica.
            .env("CLAWLOOPS_SHUTDOWN_DELAY_SECS", "2")
            .env("CLAWLOOPS_SHUTDOWN_GRACE_SECS", "10")
            .env("CLAWLOOPS_LOG_LEVEL", "info")
            .env_remove("CLAWLOOPS_SECRET_KEY_FILE")
            .env_remove("CLAWLOOPS_CONFIG")
            .env_remove("RUST_LOG")
            .envs(replica.settings.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Starts replica `i` again with `settings` of its own (`NAME`, value).
    pub async fn restart_with(&mut self, i: usize, settings: &[(&str, &str)]) {
        self.replicas[i].settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.restart(i).await;
    }

    fn launch(&mut self, i: usize, key: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.replicas[i].log)
            .expect("log file");
        let child = self
            .command(i, key)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start clawloops serve");
        self.replicas[i].child = Some(child);
    }

    /// The replica's log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default()
    }

    pub async fn wait_ready(&self, i: usize) {
        let url = format!("{}/readyz", self.replicas[i].base());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let direct = client(self.ip, &[DOMAIN]).build().expect("client");
            let seen = match direct.get(&url).send().await {
                Ok(res) if res.status() == StatusCode::OK => return,
                Ok(res) => res.status().to_string(),
                Err(err) => format!("{err:?}"),
            };
            assert!(
                Instant::now() < deadline,
                "replica {i} never became ready ({seen}):\n{}",
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to replica `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.replicas[i].pid().expect("running replica");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts replica `i` again and waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.launch(i, None);
        self.wait_ready(i).await;
    }

    /// Waits for replica `i` to end by itself (a refusal to start); its exit status.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> std::process::ExitStatus {
        let mut child = self.replicas[i].child.take().expect("started");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("replica {i} did not end by itself:\n{}", self.log(i));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts replica `i` with another key (scenario 7).
    pub fn launch_with_key(&mut self, i: usize, key: &str) {
        self.kill(i);
        self.launch(i, Some(key));
    }

    /// Which replicas say they lead the reconciler (their `/metrics`).
    pub async fn leaders(&self) -> Vec<usize> {
        let mut leaders = Vec::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            if replica.child.is_none() {
                continue;
            }
            let url = format!("http://{}:{}/metrics", self.ip, replica.port);
            let Ok(res) = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
            else {
                continue;
            };
            let text = res.text().await.unwrap_or_default();
            if text.lines().any(|l| l == "clawloops_reconciler_leader 1") {
                leaders.push(i);
            }
        }
        leaders
    }

    /// Waits until exactly one replica leads; which one.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders = self.leaders().await;
            assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
            if let [one] = leaders[..] {
                return one;
            }
            assert!(Instant::now() < deadline, "no replica leads");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The replica (index) whose worker holds a task's lease (`host-pid-uuid`).
    pub fn replica_of_worker(&self, worker: &str) -> Option<usize> {
        let pid: u32 = worker.rsplit('-').nth(1)?.parse().ok()?;
        self.replicas.iter().position(|r| r.pid() == Some(pid))
    }

    /// A browser talking to replica `i`; every browser of one person shares a cookie jar
    /// (cookies are for the host, whatever the port).
    pub fn browser_on(&self, i: usize, jar: &Arc<reqwest::cookie::Jar>) -> Browser {
        Browser {
            client: client(self.ip, &[DOMAIN])
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            jar: jar.clone(),
            base: self.replicas[i].base(),
        }
    }

    /// A signed-in admin on replica 0.
    pub async fn admin(&self) -> Browser {
        app::ssr::identity::bootstrap::create_admin(
            &self.pool,
            "root",
            app::ssr::identity::bootstrap::InitialPassword::Given(PASSWORD.into()),
            "test",
        )
        .await
        .expect("admin");
        let admin = self.browser_on(0, &self.jar);
        admin.login_ok("root", PASSWORD).await;
        admin
    }

    /// A new user, invited by `admin`, signed in on replica `i`.
    pub async fn user(
        &self,
        admin: &Browser,
        name: &str,
        i: usize,
    ) -> (Browser, Arc<reqwest::cookie::Jar>) {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let browser = join(admin, self.browser_on(i, &jar), name).await;
        (browser, jar)
    }

    /// Runtime containers of this installation for `user` (by owner label).
    pub fn containers_of(&self, user: &str) -> Vec<String> {
        clawloops_testkit::labelled(
            &["ps", "-a", "-q"],
            &self.instance,
            Some(&format!("org.clawloops.owner={user}")),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
        if let Some(proxy) = &self.proxy {
            let _ = clawloops_testkit::docker(&["rm", "-f", &proxy.name]);
        }
        clawloops_testkit::remove_installation(&self.instance);
    }
}

/// A runtime command through a replica; the answer's JSON.
pub async fn command(browser: &Browser, command: &str) -> Value {
    let (status, body) = browser
        .call("runtime/command", &[("command", command)])
        .await;
    assert_eq!(status, StatusCode::OK, "{command}: {body}");
    body
}
