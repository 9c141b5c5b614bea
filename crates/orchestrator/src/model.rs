//! States, actions and stages, as stored (text) and as shown.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($variant),+ }

        impl $ty {
            /// The stored form.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// Parses the stored form.
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What the user (or an admin) wants.
    DesiredState { Running => "running", Stopped => "stopped", Deleted => "deleted" }
);
text_enum!(
    /// What was last seen.
    ObservedState {
        Creating => "creating",
        Starting => "starting",
        Running => "running",
        Stopping => "stopping",
        Stopped => "stopped",
        Error => "error",
        Deleted => "deleted",
    }
);
text_enum!(
    /// A lifecycle task's action.
    Action { Start => "start", Stop => "stop", Recover => "recover", Delete => "delete" }
);
text_enum!(
    /// Where a task stands.
    TaskStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Canceled => "canceled",
    }
);
text_enum!(
    /// The steps of a start, in order.
    Stage {
        Queued => "queued",
        ConfigRendered => "config_rendered",
        ImageReady => "image_ready",
        ContainerCreated => "container_created",
        Started => "started",
        Healthy => "healthy",
        Stopped => "stopped",
        Removed => "removed",
    }
);

impl TaskStatus {
    /// Succeeded, failed or canceled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }
}
