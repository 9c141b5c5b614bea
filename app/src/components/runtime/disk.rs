//! How full a workspace is against its limit.

use super::*;

/// The workspace's size, in words and as a bar that turns amber at 80% and red past the limit.
#[component]
pub fn DiskMeter(disk: crate::api::runtime::DiskView) -> impl IntoView {
    let words = match &disk.limit {
        Some(limit) => format!("Workspace files: {} of {limit}", disk.used),
        None => format!("Workspace files: {} (no limit)", disk.used),
    };
    let bar = disk.percent().map(|percent| {
        let tone = match percent {
            0..=79 => "bg-emerald-500",
            80..=99 => "bg-amber-500",
            _ => "bg-red-600",
        };
        view! {
            <div
                class="h-2 w-full max-w-xs overflow-hidden rounded-full bg-slate-200 dark:bg-slate-700"
                role="progressbar"
                aria-label="Workspace disk use"
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=percent.to_string()
            >
                <div class=format!("h-full {tone}") style=format!("width: {percent}%")></div>
            </div>
        }
    });
    view! {
        <div class="space-y-1" data-disk-used=disk.used_bytes.to_string()>
            <p class="text-sm text-slate-600 dark:text-slate-400">{words}</p>
            {bar}
        </div>
    }
}
