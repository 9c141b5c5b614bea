//! The baseline: the same image started with plain `docker run` and polled the same way.

use super::*;

impl Bench {
    /// `docker run` of the image with what it needs to answer (its configuration, port
    /// environment), then the same health poll. Returns the time to healthy; removes the
    /// container when `remove`.
    pub(super) async fn plain_start(
        &self,
        settings: &RuntimeSettings,
        name: &str,
        remove: bool,
    ) -> Result<Duration> {
        let profile = &settings.profile;
        let config_dir = self.plain_dir.path().join(name);
        let config = clawloops_orchestrator::openclaw::RuntimeConfig {
            port: profile.port,
            auth: clawloops_orchestrator::openclaw::GatewayAuth::Token(format!(
                "plain-{}",
                Uuid::new_v4()
            )),
            allowed_origins: Vec::new(),
            provider: clawloops_orchestrator::openclaw::ModelProvider {
                base_url: settings.model_base_url.clone(),
                api_key: "plain".into(),
                models: settings.models.clone(),
            },
        }
        .render();
        let owner = clawloops_driver::files::numeric_owner(&settings.profile.user);
        clawloops_driver::files::write_atomically(
            self.plain_dir.path(),
            &config_dir,
            &config,
            owner,
        )?;
        let container = format!("{}-plain-{name}", self.instance);
        let network = plain_network(self);
        let mut args: Vec<String> = ["run", "-d", "--name", &container, "--network", &network]
            .map(str::to_owned)
            .into();
        args.extend([
            "--label".into(),
            format!("org.clawloops.bench={}", self.instance),
        ]);
        args.extend(["--user".into(), profile.user.clone()]);
        // The same resource limits: they are the deployment's choice, not orchestration cost.
        args.extend([
            format!("--memory={}m", settings.limits.memory_mb),
            format!("--cpus={}", settings.limits.cpus),
            format!("--pids-limit={}", settings.limits.pids),
        ]);
        for (key, value) in &profile.env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        if let Some(mount) = &profile.config_mount {
            args.extend(["-v".into(), format!("{}:{mount}:ro", config_dir.display())]);
        }
        args.push(settings.image.clone());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();

        let started = Instant::now();
        let id = docker(&argv).await?;
        let ip = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &id,
        ])
        .await?;
        let url = format!("http://{ip}:{}{}", profile.port, profile.ready_path);
        let deadline = Instant::now() + settings.ready_timeout;
        loop {
            let ok = self
                .http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("plain {} never became ready", settings.image);
            }
            tokio::time::sleep(READY_POLL).await;
        }
        let took = started.elapsed();
        if remove {
            docker(&["rm", "-f", &id]).await?;
        }
        Ok(took)
    }
}
