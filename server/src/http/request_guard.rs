//! Two request middlewares: who the client is (address, user agent) and the cross-site
//! request check for state-changing methods.

use app::ssr::identity::auth::ClientInfo;
use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use clawloops_wire::edge::{Claimed, claimed_origin, is_own_origin};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the middlewares need from the settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `scheme://host[:port]` of the public URL.
    pub public_origin: String,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

/// Puts a [`ClientInfo`] into the request extensions.
pub async fn client_info(
    State(config): State<GuardConfig>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let addr = peer.map(|peer| client_addr(peer, req.headers(), &config.trusted_proxies));
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect());
    req.extensions_mut().insert(ClientInfo {
        addr: addr.map(|a| a.to_string()),
        user_agent,
    });
    next.run(req).await
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// Refuses state-changing requests whose `Origin` (or, without one, `Referer`) names another
/// site, or is `null` (an opaque origin: a sandboxed frame, a `data:` page): 403
/// `FOREIGN_ORIGIN`. Requests naming no origin at all (non-browser clients) pass;
/// SameSite=Lax cookies already keep those from riding on a browser session.
pub async fn same_origin(State(config): State<GuardConfig>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let foreign = match claimed_origin(text(header::ORIGIN), text(header::REFERER)) {
        Claimed::Site(origin) => (!is_own(&origin, headers, &config)).then_some(origin),
        // A sandboxed frame or a `data:` page (a workspace could make one): never ours.
        Claimed::Opaque => Some("null".to_owned()),
        Claimed::Unstated => None,
    };
    match foreign {
        Some(origin) => {
            tracing::warn!(%origin, "refused a cross-site request");
            (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({
                    "code": "FOREIGN_ORIGIN",
                    "message": "This request came from another site and was refused.",
                })),
            )
                .into_response()
        }
        None => next.run(req).await,
    }
}

/// Our own origin: the public URL's, or the one the request itself was addressed to.
fn is_own(origin: &str, headers: &HeaderMap, config: &GuardConfig) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    is_own_origin(origin, &config.public_origin, host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|s| s.parse().expect("net")).collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.7"),
        );
        let peer: IpAddr = "172.18.0.2".parse().expect("ip");
        assert_eq!(
            client_addr(peer, &headers, &[]),
            peer,
            "untrusted peer: ignore XFF"
        );
        let trusted = nets(&["172.18.0.0/16"]);
        assert_eq!(
            client_addr(peer, &headers, &trusted).to_string(),
            "203.0.113.7",
            "right-most untrusted entry (the left ones are client-supplied)"
        );
    }

    #[test]
    fn own_origin_matches_public_url_or_host() {
        let config = GuardConfig {
            public_origin: "https://claw.example.com".into(),
            trusted_proxies: Arc::new(Vec::new()),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(is_own("https://claw.example.com", &headers, &config));
        assert!(is_own("http://127.0.0.1:3000", &headers, &config));
        assert!(!is_own("https://evil.example", &headers, &config));
        assert!(!is_own("http://127.0.0.1:3001", &headers, &config));
    }
}
