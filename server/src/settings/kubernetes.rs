//! `runtime_engine = "kubernetes"`: the namespace runtimes live in, their storage, and where
//! the entry proxy (Traefik) is, so that network policies admit it alone (docs/kubernetes.md).

use super::*;
use std::collections::BTreeMap;

/// What the Kubernetes driver needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// The API server to speak to without credentials (a `kubectl proxy`, a test server);
    /// unset: the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the pod's service account.
    pub api_url: Option<url::Url>,
    pub driver: clawloops_driver::kubernetes::KubeSettings,
}

impl RawSettings {
    pub(super) fn kubernetes(&self) -> Result<Box<KubernetesSettings>, SettingsError> {
        let fail = |key: &str, text: String| Err(SettingsError::new(key, text));
        for (key, namespace) in [
            ("kubernetes_namespace", &self.kubernetes_namespace),
            (
                "kubernetes_entry_namespace",
                &self.kubernetes_entry_namespace,
            ),
        ] {
            if !clawloops_driver::kubernetes::is_dns_label(namespace) {
                return fail(key, format!("`{namespace}` is not a namespace name"));
            }
        }
        if let Some(class) = &self.kubernetes_storage_class
            && !clawloops_driver::kubernetes::is_subdomain(class)
        {
            return fail(
                "kubernetes_storage_class",
                format!("`{class}` is not a storage class name"),
            );
        }
        for (key, labels) in [
            ("kubernetes_entry_labels", &self.kubernetes_entry_labels),
            ("kubernetes_dns_labels", &self.kubernetes_dns_labels),
        ] {
            if labels.is_empty() {
                return fail(key, "must name at least one label of those pods".into());
            }
            if let Some((k, v)) = labels
                .iter()
                .find(|(k, v)| !clawloops_driver::kubernetes::is_label(k, v))
            {
                return fail(key, format!("`{k}={v}` is not a label"));
            }
        }
        let entry_ip = match &self.kubernetes_entry_address {
            None => None,
            Some(address) => match address.parse::<std::net::IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    return fail(
                        "kubernetes_entry_address",
                        format!("`{address}` is not an IP address (the Service's cluster IP)"),
                    );
                }
            },
        };
        if entry_ip.is_none()
            && !clawloops_driver::kubernetes::is_dns_label(&self.kubernetes_entry_service)
        {
            return fail(
                "kubernetes_entry_service",
                format!(
                    "`{}` is not a Service name (or set kubernetes_entry_address)",
                    self.kubernetes_entry_service
                ),
            );
        }
        if self.kubernetes_entry_sources.is_empty() {
            return fail(
                "kubernetes_entry_sources",
                "is required: the pod network CIDR the entry proxy's pods take addresses from \
                 (runtimes believe identity headers from there only)"
                    .into(),
            );
        }
        for source in &self.kubernetes_entry_sources {
            if source.parse::<ipnet::IpNet>().is_err()
                && source.parse::<std::net::IpAddr>().is_err()
            {
                return fail(
                    "kubernetes_entry_sources",
                    format!("`{source}` is not an address or CIDR"),
                );
            }
        }
        let api_url = match &self.kubernetes_api_url {
            None => None,
            Some(text) => match url::Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    return fail(
                        "kubernetes_api_url",
                        format!("`{text}` is not an http(s) address"),
                    );
                }
            },
        };
        let mut driver =
            clawloops_driver::kubernetes::KubeSettings::new(&self.kubernetes_namespace);
        driver.storage_class = self.kubernetes_storage_class.clone();
        driver.workspace_mb = self.runtime_disk_mb.max(1);
        driver.ephemeral_storage_mb = self.kubernetes_ephemeral_storage_mb;
        driver.entry_namespace = self.kubernetes_entry_namespace.clone();
        driver.entry_labels = self.kubernetes_entry_labels.clone();
        driver.entry_ip = entry_ip;
        driver.entry_service = Some(self.kubernetes_entry_service.clone());
        driver.entry_sources = self.kubernetes_entry_sources.clone();
        driver.dns_labels = self.kubernetes_dns_labels.clone();
        Ok(Box::new(KubernetesSettings { api_url, driver }))
    }
}

/// The defaults: runtimes in `clawloops-runtimes`, Traefik in `clawloops` labelled as the
/// manifests label it, CoreDNS as most distributions label it.
pub(super) fn default_entry_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), "traefik".to_owned())])
}

pub(super) fn default_dns_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])
}
