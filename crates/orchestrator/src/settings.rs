//! What the orchestrator needs to know about this deployment.

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
    /// The model gateway base URL (`…/v1`) written into each runtime's configuration.
    pub model_base_url: String,
    /// Model ids offered to runtimes (first = default).
    pub models: Vec<String>,
    /// The browser address of a user's workspace, `{user}` replaced by the username; unset
    /// until the entry layer routes workspaces.
    pub browser_url_template: Option<String>,
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
        }
    }
}
