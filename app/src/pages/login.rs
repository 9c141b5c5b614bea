use crate::api::auth::Login;
use crate::api::sso::{Refusal, SsoButton, sso_providers};
use crate::components::auth::{reload_to, safe_next, urlencode, use_auth};
use crate::components::ui::{ErrorNotice, Field, field_error, form_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;

/// Sign-in form. Signed-in visitors go straight on.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = Memo::new(move |_| safe_next(query.with(|q| q.get("next"))));
    let auth = use_auth();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let login = ServerAction::<Login>::new();
    let result = Signal::derive(move || login.value().get());
    let providers = Resource::new(|| (), |_| sso_providers());
    let sso_error = Memo::new(move |_| {
        query.with(|q| {
            let refusal = Refusal::from_code(&q.get("sso_error")?)?;
            Some((refusal, q.get("provider").unwrap_or_default()))
        })
    });

    Effect::new(move |_| {
        if let Some(Ok(me)) = result.get() {
            let to = if me.must_change_password {
                "/account/password".to_owned()
            } else {
                next.get_untracked()
            };
            reload_to(&to);
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        login.dispatch(Login {
            username: username.get_untracked(),
            password: password.get_untracked(),
        });
    };

    view! {
        <Title text="Sign in" />
        <Suspense>
            {move || Suspend::new(async move {
                matches!(auth.me.await, Ok(Some(_)))
                    .then(|| view! { <Redirect path=next.get_untracked() /> })
            })}
        </Suspense>
        <section class="mx-auto mt-8 max-w-sm">
            <h1 class="text-2xl font-bold tracking-tight">"Sign in to ClawLoops"</h1>
            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                "New here? Ask an administrator for an invitation link."
            </p>
            {move || {
                sso_error
                    .get()
                    .map(|(refusal, id)| {
                        view! { <SsoRefusal refusal id providers /> }
                    })
            }}
            <Suspense>
                {move || Suspend::new(async move {
                    let list = providers.await.unwrap_or_default();
                    (!list.is_empty()).then(|| view! { <SsoChoices list next /> })
                })}
            </Suspense>
            <form class="card mt-6 space-y-4" on:submit=submit novalidate>
                <ErrorNotice error=form_error(result) />
                <Field
                    name="username"
                    label="Username"
                    value=username
                    autocomplete="username"
                    required=true
                    autofocus=true
                    error=field_error(result, "username")
                />
                <Field
                    name="password"
                    label="Password"
                    kind="password"
                    value=password
                    autocomplete="current-password"
                    required=true
                    error=field_error(result, "password")
                />
                <button
                    type="submit"
                    class="btn-primary w-full justify-center"
                    disabled=move || login.pending().get()
                >
                    {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </section>
    }
}

/// Why the last single sign-on did not sign anyone in, in words.
#[component]
fn SsoRefusal(
    refusal: Refusal,
    id: String,
    providers: Resource<Result<Vec<SsoButton>, crate::AppError>>,
) -> impl IntoView {
    let message = move || {
        let name = providers
            .get()
            .and_then(Result::ok)
            .and_then(|list| list.into_iter().find(|p| p.id == id).map(|p| p.name))
            .unwrap_or_else(|| "The identity provider".to_owned());
        refusal.message(&name)
    };
    view! {
        <div role="alert" class="notice notice-error mt-6" data-code=refusal.code()>
            {message}
        </div>
    }
}

/// A button per single sign-on provider. Plain links (`rel=external`): the browser leaves
/// for the provider.
#[component]
fn SsoChoices(list: Vec<SsoButton>, next: Memo<String>) -> impl IntoView {
    view! {
        <div class="card mt-6 space-y-3">
            {list
                .into_iter()
                .map(|p| {
                    let href = move || {
                        format!("/auth/sso/{}/start?next={}", p.id, urlencode(&next.get()))
                    };
                    view! {
                        <a href=href rel="external" class="btn-secondary w-full justify-center">
                            {format!("Sign in with {}", p.name)}
                        </a>
                    }
                })
                .collect_view()}
            <p class="text-center text-xs text-slate-500">"or with your ClawLoops password"</p>
        </div>
    }
}
