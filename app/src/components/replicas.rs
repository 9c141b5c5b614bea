//! The control-plane replicas on the overview page: which one leads the reconciler, which are
//! shutting down, which have not been heard from.

use super::format;
use crate::api::status::ReplicaStatus;
use leptos::prelude::*;
use time::OffsetDateTime;

/// Every replica seen within the hour, the leader first.
#[component]
pub fn ReplicaTable(replicas: Vec<ReplicaStatus>, checked_at: OffsetDateTime) -> impl IntoView {
    if replicas.is_empty() {
        return ().into_any();
    }
    let rows = replicas
        .into_iter()
        .map(|replica| {
            let gone = replica.gone(checked_at);
            let (state, class) = if gone {
                ("Not heard from", "badge badge-bad")
            } else if replica.draining {
                ("Shutting down", "badge badge-neutral")
            } else {
                ("Serving", "badge badge-ok")
            };
            let role = if replica.leader && !gone {
                "Reconciler leader"
            } else {
                "Worker"
            };
            let seen = format!("{} ago", format::duration(checked_at - replica.seen_at));
            let id = replica.id.clone();
            view! {
                <tr data-replica=id>
                    <td>
                        <span class="font-mono text-xs">{replica.id}</span>
                        {replica
                            .this
                            .then(|| {
                                view! {
                                    <span class="ml-2 text-xs text-slate-500 dark:text-slate-400">
                                        "(answered this page)"
                                    </span>
                                }
                            })}
                    </td>
                    <td>{replica.hostname}</td>
                    <td>{replica.version}</td>
                    <td>{role}</td>
                    <td>
                        <span class=class>{state}</span>
                    </td>
                    <td>{format::utc(replica.started_at)}</td>
                    <td>{seen}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="replicas-heading" class="card overflow-x-auto">
            <h3 id="replicas-heading" class="mb-3 font-medium">
                "Control-plane replicas"
            </h3>
            <table class="table">
                <thead>
                    <tr>
                        <th>"Replica"</th>
                        <th>"Host"</th>
                        <th>"Version"</th>
                        <th>"Role"</th>
                        <th>"State"</th>
                        <th>"Started"</th>
                        <th>"Last report"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="mt-2 text-xs text-slate-500 dark:text-slate-400">
                "Every replica serves pages, sign-in, workspaces and the model gateway; one at a time leads the reconciler. Each reports every 5 seconds."
            </p>
        </section>
    }
    .into_any()
}
