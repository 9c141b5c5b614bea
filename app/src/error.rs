//! The one error type that crosses the server-function boundary.
//!
//! Its variants carry only words meant for the person using the app. Internal failures
//! (database, network, Docker) are logged on the server with a short reference and reach the
//! browser as [`AppError::Internal`] with that reference only.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// An error a server function can return, safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppError {
    /// Nobody is signed in.
    #[error("Please sign in to continue.")]
    Unauthenticated,
    /// The signed-in user may not do this.
    #[error("You do not have access to this.")]
    AccessDenied,
    /// The account is disabled; an admin can enable it again.
    #[error("This account is disabled. Ask an administrator to enable it.")]
    UserDisabled,
    /// The password must be changed before anything else.
    #[error("Please choose a new password before you continue.")]
    PasswordChangeRequired,
    /// Username or password is wrong (which one is not said).
    #[error("The username or password is not correct.")]
    InvalidCredentials,
    /// Only the break-glass admin may sign in with a password; everyone else uses single sign-on.
    #[error(
        "Password sign-in is turned off here. Sign in with your organisation's account instead."
    )]
    PasswordSignInOff,
    /// Too many failed sign-ins; try again later.
    #[error("Too many failed attempts. Try again in {retry_after_secs} seconds.")]
    TooManyAttempts {
        /// Seconds until the next attempt is allowed.
        retry_after_secs: i64,
    },
    /// The server is checking as many passwords as it has CPUs and the queue did not move in
    /// time; trying again shortly works.
    #[error("Too many sign-ins at once. Try again in {retry_after_secs} seconds.")]
    Busy {
        /// Seconds to wait before trying again.
        retry_after_secs: i64,
    },
    /// No invitation has this link.
    #[error("This invitation link is not valid. Check that you copied all of it.")]
    InvitationNotFound,
    /// The invitation ran out of time.
    #[error("This invitation has expired. Ask an administrator for a new one.")]
    InvitationExpired,
    /// An admin withdrew the invitation.
    #[error("This invitation was withdrawn by an administrator.")]
    InvitationRevoked,
    /// Someone already used the invitation.
    #[error("This invitation has already been used.")]
    InvitationAlreadyConsumed,
    /// The thing asked for does not exist (or is not visible to the caller).
    #[error("{what} was not found.")]
    NotFound {
        /// What was looked for, in words ("User", "Invitation").
        what: String,
    },
    /// The request was understood but a value in it is not acceptable.
    #[error("{message}")]
    Validation {
        /// The form field the message belongs to, when there is one.
        field: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The request conflicts with the current state (a name already taken, …).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// A dependency (the database, …) is down; trying again later may work.
    #[error("The service is temporarily unavailable. Please try again in a moment.")]
    Unavailable,
    /// Something failed on the server; details are in the server log under `reference`.
    #[error("Something went wrong on our side (reference {reference}).")]
    Internal {
        /// A short id that appears in the server log next to the real cause.
        reference: String,
    },
    /// The browser could not talk to the server, or could not read its answer.
    #[error("Could not reach the server: {message}")]
    Transport {
        /// What failed, from the server-function machinery.
        message: String,
    },
}

impl AppError {
    /// A stable machine-readable code, as serialised in the `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::AccessDenied => "ACCESS_DENIED",
            AppError::UserDisabled => "USER_DISABLED",
            AppError::PasswordChangeRequired => "PASSWORD_CHANGE_REQUIRED",
            AppError::InvalidCredentials => "INVALID_CREDENTIALS",
            AppError::PasswordSignInOff => "PASSWORD_SIGN_IN_OFF",
            AppError::TooManyAttempts { .. } => "TOO_MANY_ATTEMPTS",
            AppError::Busy { .. } => "BUSY",
            AppError::InvitationNotFound => "INVITATION_NOT_FOUND",
            AppError::InvitationExpired => "INVITATION_EXPIRED",
            AppError::InvitationRevoked => "INVITATION_REVOKED",
            AppError::InvitationAlreadyConsumed => "INVITATION_ALREADY_CONSUMED",
            AppError::NotFound { .. } => "NOT_FOUND",
            AppError::Validation { .. } => "VALIDATION",
            AppError::Conflict { .. } => "CONFLICT",
            AppError::Unavailable => "UNAVAILABLE",
            AppError::Internal { .. } => "INTERNAL",
            AppError::Transport { .. } => "TRANSPORT",
        }
    }

    /// The HTTP status a response carrying this error should have.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthenticated | AppError::InvalidCredentials => 401,
            AppError::AccessDenied
            | AppError::UserDisabled
            | AppError::PasswordChangeRequired
            | AppError::PasswordSignInOff => 403,
            AppError::TooManyAttempts { .. } | AppError::Busy { .. } => 429,
            AppError::NotFound { .. } | AppError::InvitationNotFound => 404,
            AppError::InvitationExpired => 410,
            AppError::InvitationRevoked | AppError::InvitationAlreadyConsumed => 409,
            AppError::Validation { .. } => 422,
            AppError::Conflict { .. } => 409,
            AppError::Unavailable => 503,
            AppError::Internal { .. } | AppError::Transport { .. } => 500,
        }
    }

    /// Seconds after which trying again makes sense (`Retry-After`), for 429 answers.
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            AppError::TooManyAttempts { retry_after_secs }
            | AppError::Busy { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The message for one form field, when this error belongs to it.
    pub fn field_message(&self, name: &str) -> Option<&str> {
        match self {
            AppError::Validation {
                field: Some(field),
                message,
            } if field == name => Some(message),
            _ => None,
        }
    }

    /// A validation error attached to one form field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Arguments come from the client, so echoing what was wrong with them is safe.
            // On the server, a deserialization error can only be about those arguments.
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => {
                AppError::Validation {
                    field: None,
                    message: format!("The request was not understood: {message}"),
                }
            }
            ServerFnErrorErr::Deserialization(message) if cfg!(feature = "ssr") => {
                AppError::Validation {
                    field: None,
                    message: format!("The request was not understood: {message}"),
                }
            }
            other => AppError::Transport {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_a_stable_code_field() {
        let err = AppError::field("username", "Username is taken.");
        let json = serde_json_like(&err);
        assert!(json.contains(r#""code":"VALIDATION""#), "{json}");
        assert!(json.contains(r#""field":"username""#), "{json}");
        assert_eq!(err.code(), "VALIDATION");
        assert_eq!(err.status(), 422);
    }

    #[test]
    fn identity_codes_have_their_statuses() {
        let cases = [
            (AppError::UserDisabled, "USER_DISABLED", 403),
            (
                AppError::PasswordChangeRequired,
                "PASSWORD_CHANGE_REQUIRED",
                403,
            ),
            (AppError::InvalidCredentials, "INVALID_CREDENTIALS", 401),
            (
                AppError::TooManyAttempts {
                    retry_after_secs: 3,
                },
                "TOO_MANY_ATTEMPTS",
                429,
            ),
            (
                AppError::Busy {
                    retry_after_secs: 2,
                },
                "BUSY",
                429,
            ),
            (AppError::InvitationNotFound, "INVITATION_NOT_FOUND", 404),
            (AppError::InvitationExpired, "INVITATION_EXPIRED", 410),
            (AppError::InvitationRevoked, "INVITATION_REVOKED", 409),
            (
                AppError::InvitationAlreadyConsumed,
                "INVITATION_ALREADY_CONSUMED",
                409,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.status(), status);
            assert!(serde_json_like(&err).contains(&format!(r#""code":"{code}""#)));
        }
    }

    #[test]
    fn internal_errors_show_only_the_reference() {
        let err = AppError::Internal {
            reference: "ab12cd".into(),
        };
        assert_eq!(
            err.to_string(),
            "Something went wrong on our side (reference ab12cd)."
        );
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn bad_arguments_become_a_client_error() {
        let err = AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field".into()));
        assert_eq!(err.status(), 422);
    }

    fn serde_json_like(err: &AppError) -> String {
        String::from_utf8_lossy(&err.ser()).into_owned()
    }
}
