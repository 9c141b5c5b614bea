//! The API server's refusals as the driver's errors: what a task records and what the runtime
//! card and admin pages turn into plain words (docs/kubernetes.md, "Errors").

use crate::DriverError;

/// The HTTP status of an API server refusal.
pub fn status(err: &::kube::Error) -> Option<u16> {
    match err {
        ::kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// What `err` means for a runtime. `image`, when the request made a Pod, names the image in
/// errors about it.
pub fn classify(err: &::kube::Error, image: Option<&str>) -> DriverError {
    let ::kube::Error::Api(status) = err else {
        return DriverError::Unreachable(format!("the Kubernetes API server: {err}"));
    };
    let message = status.message.clone();
    match (status.code, status.reason.as_str()) {
        (403, _) if is_quota(&message) => DriverError::QuotaExceeded(message),
        (401 | 403, _) => DriverError::Forbidden(message),
        (409, "AlreadyExists" | "Conflict") => DriverError::Conflict,
        (404, _) => DriverError::Missing(message),
        (422 | 400, _) => match image {
            Some(image) if message.contains("image") => DriverError::ImageMissing(image.into()),
            _ => DriverError::Rejected(message),
        },
        (code, _) if code >= 500 || code == 429 => DriverError::Unreachable(format!(
            "the Kubernetes API server answered {code}: {message}"
        )),
        _ => DriverError::Docker(format!("Kubernetes refused ({}): {message}", status.code)),
    }
}

/// Whether a refusal is a resource quota's (the API server says 403 Forbidden for both).
fn is_quota(message: &str) -> bool {
    message.contains("exceeded quota") || message.contains("must specify limits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: u16, reason: &str, message: &str) -> ::kube::Error {
        ::kube::Error::Api(Box::new(::kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..::kube::core::Status::failure(message, reason)
        }))
    }

    #[test]
    fn refusals_become_errors_with_their_meaning() {
        let quota = refusal(
            403,
            "Forbidden",
            "pods \"x\" is forbidden: exceeded quota: runtimes, requested: limits.memory=2Gi",
        );
        assert!(matches!(
            classify(&quota, None),
            DriverError::QuotaExceeded(_)
        ));
        let rbac = refusal(
            403,
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:x:y\" cannot create resource",
        );
        assert!(matches!(classify(&rbac, None), DriverError::Forbidden(_)));
        let invalid = refusal(
            422,
            "Invalid",
            "Pod \"x\" is invalid: spec.containers[0].name",
        );
        assert!(matches!(classify(&invalid, None), DriverError::Rejected(_)));
        let exists = refusal(409, "AlreadyExists", "pods \"x\" already exists");
        assert!(matches!(classify(&exists, None), DriverError::Conflict));
        let busy = refusal(503, "ServiceUnavailable", "etcd leader changed");
        assert!(matches!(classify(&busy, None), DriverError::Unreachable(_)));
        assert_eq!(status(&busy), Some(503));
    }
}
