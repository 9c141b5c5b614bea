//! What the orchestrator needs to know about this deployment.

use clawloops_driver::firewall::Egress;
use clawloops_driver::{Limits, Profile};
use std::time::Duration;

/// Runtime settings, resolved from the server's settings.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `openclaw` or `stub`: which built-in profile the image uses.
    pub profile_name: String,
    /// The image every runtime runs.
    pub image: String,
    pub profile: Profile,
    /// Limits when the binding has no override.
    pub limits: Limits,
    /// Starts (and other tasks) running at once; more wait in the queue.
    pub concurrency: usize,
    /// How long a start waits for the runtime to answer its health check.
    pub ready_timeout: Duration,
    /// SIGTERM grace before a kill.
    pub stop_grace: Duration,
    /// How often the reconciler compares bindings with Docker.
    pub reconcile_every: Duration,
    /// How often workspaces are measured against their disk limits.
    pub disk_check_every: Duration,
    /// The model gateway base URL (`…/v1`) written into each runtime's configuration.
    pub model_base_url: String,
    /// Model ids offered to runtimes (first = default).
    pub models: Vec<String>,
    /// The browser address of a user's workspace, `{user}` replaced by the username; unset
    /// until the entry layer routes workspaces.
    pub browser_url_template: Option<String>,
    /// Minutes without workspace traffic before a running runtime is stopped (0 = never);
    /// a user's own setting overrides it.
    pub idle_stop_minutes: u32,
    /// The longest a runtime may run at a time, busy or not (None = no limit).
    pub max_lifetime_minutes: Option<u32>,
    /// What runtimes may reach beyond the entry proxy (applied when a runtime starts).
    pub egress: Egress,
}

impl Default for RuntimeSettings {
    /// The stub profile with modest limits (tests and tools start from it).
    fn default() -> Self {
        RuntimeSettings {
            profile_name: "stub".into(),
            image: format!("clawloops/runtime-stub:{}", env!("CARGO_PKG_VERSION")),
            profile: Self::stub_profile(),
            limits: Limits {
                memory_mb: 64,
                cpus: 0.5,
                pids: 64,
                disk_mb: None,
            },
            concurrency: 4,
            ready_timeout: Duration::from_secs(20),
            stop_grace: Duration::from_secs(5),
            reconcile_every: Duration::from_secs(10),
            disk_check_every: Duration::from_secs(60),
            model_base_url: "http://gateway.invalid/v1".into(),
            models: vec!["fake-model".into()],
            browser_url_template: None,
            idle_stop_minutes: 60,
            max_lifetime_minutes: None,
            egress: Egress::None,
        }
    }
}

impl RuntimeSettings {
    /// The OpenClaw gateway profile (image built by scripts/build-images.sh or the official one).
    pub fn openclaw_profile() -> Profile {
        Profile {
            port: 18789,
            ready_path: "/readyz".into(),
            state_mount: "/home/node/.openclaw".into(),
            config_mount: Some("/etc/openclaw".into()),
            user: "1000:1000".into(),
            tmpfs: vec![
                ("/tmp".into(), "rw,size=256m".into()),
                (
                    "/home/node/.cache".into(),
                    "rw,size=64m,uid=1000,gid=1000".into(),
                ),
            ],
            env: vec![(
                "OPENCLAW_CONFIG_PATH".into(),
                "/etc/openclaw/openclaw.json".into(),
            )],
            health_command: vec![
                "node".into(),
                "-e".into(),
                "fetch('http://127.0.0.1:18789/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
                    .into(),
            ],
        }
    }

    /// The tiny stand-in used by scale tests and benchmarks.
    pub fn stub_profile() -> Profile {
        Profile {
            port: 18789,
            ready_path: "/readyz".into(),
            state_mount: "/state".into(),
            config_mount: Some("/etc/openclaw".into()),
            user: "65534:65534".into(),
            tmpfs: vec![("/tmp".into(), "rw,size=16m".into())],
            env: Vec::new(),
            health_command: vec![
                "/runtime-stub".into(),
                "ready".into(),
                "http://127.0.0.1:18789/readyz".into(),
            ],
        }
    }
}

/// How replicas share the work: leases and pacing. The defaults suit production; tests shorten
/// them.
#[derive(Debug, Clone, Copy)]
pub struct Coordination {
    /// A task's lease: renewed every third of it while the task runs; a worker silent longer
    /// loses the task to another.
    pub task_lease: Duration,
    /// How long the leader's database session may be silent before PostgreSQL ends it (and with
    /// it the lead): the longest a paused leader holds up reconciling.
    pub leader_lease: Duration,
    /// How often a follower tries to take the lead (the failover time after a leader's crash).
    pub campaign_every: Duration,
    /// How often idle workers look at the queue without being woken (wake-ups come by
    /// `NOTIFY`; this catches any lost while a listener reconnected).
    pub poll_every: Duration,
}

impl Default for Coordination {
    fn default() -> Self {
        Coordination {
            task_lease: Duration::from_secs(30),
            leader_lease: Duration::from_secs(15),
            campaign_every: Duration::from_secs(1),
            poll_every: Duration::from_secs(10),
        }
    }
}
