//! Traefik's dynamic configuration for the workspace hosts, and the identity headers it passes on.

use clawloops_orchestrator::{Orchestrator, RuntimeRow, USER_HEADER};
use serde_json::{Value, json};

use super::USER_ID_HEADER;

/// The routers and services for running runtimes.
pub(super) fn routes(domain: &str, bindings: &[RuntimeRow], https: bool) -> Value {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for b in bindings {
        let Some(endpoint) = b.internal_endpoint.as_deref().filter(|e| !e.is_empty()) else {
            continue;
        };
        let name = Orchestrator::workspace_name(&b.username);
        let key = format!("ws-{name}");
        let mut router = json!({
            "rule": format!("Host(`{name}.{domain}`)"),
            "entryPoints": ["web"],
            "middlewares": [
                "public-limits@file",
                "workspace-auth@file",
                "workspace-cookies@file",
                "workspace-headers@file",
            ],
            "service": key,
        });
        if https {
            // Served with the certificate of the file provider's TLS store (docs/tls.md).
            router["entryPoints"] = json!(["websecure"]);
            router["tls"] = json!({});
        }
        routers.insert(key.clone(), router);
        services.insert(
            key,
            json!({ "loadBalancer": { "servers": [ { "url": endpoint } ] } }),
        );
    }
    if routers.is_empty() {
        return json!({});
    }
    json!({ "http": { "routers": routers, "services": services } })
}

/// Response header names Traefik copies into the forwarded request.
pub fn identity_headers() -> [&'static str; 2] {
    [USER_HEADER, USER_ID_HEADER]
}
