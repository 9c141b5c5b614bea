//! The error a refused setting gives: which setting, where it came from, and why.

use super::ENV_PREFIX;

/// A setting that could not be accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`{origin}: {message}")]
pub struct SettingsError {
    /// The setting's name (as in the TOML file; the env variable is `CLAWLOOPS_` + upper case).
    pub setting: String,
    /// Where the bad value came from, as ` (from …)`, or empty.
    origin: String,
    /// What is wrong with it.
    pub message: String,
}

impl SettingsError {
    pub(super) fn new(setting: &str, message: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.to_owned(),
            origin: String::new(),
            message: message.into(),
        }
    }
}

impl From<figment::Error> for SettingsError {
    fn from(err: figment::Error) -> Self {
        let setting = err.path.join(".");
        let origin = match (&err.metadata, &err.profile) {
            (Some(md), _) if md.name.contains("environment") => format!(
                " (from environment variable {ENV_PREFIX}{})",
                setting.to_uppercase()
            ),
            (Some(md), _) => match &md.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", md.name),
            },
            _ => String::new(),
        };
        SettingsError {
            setting: if setting.is_empty() {
                "settings file".into()
            } else {
                setting
            },
            origin,
            message: err.kind.to_string(),
        }
    }
}
