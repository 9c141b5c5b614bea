use crate::components::{auth::provide_auth, layout::AppShell};
use crate::pages::{
    account::{AccountPage, PasswordPage},
    admin::{
        AdminHomePage, AuditPage, BreakerPage, InvitationDetailPage, InvitationsPage, LimitsPage,
        ModelsAdminPage, NewInvitationPage, RuntimesPage, SignInAdminPage, UsageAdminPage,
        UserDetailPage, UsersPage,
    },
    errors::DisabledPage,
    home::HomePage,
    invite::InvitePage,
    login::LoginPage,
    models::ModelsPage,
    not_found::NotFoundPage,
    sso_link::SsoLinkPage,
    usage::UsagePage,
    workspace::WorkspacePage,
};
use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    Lazy, LazyRoute, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
    lazy_route, path,
};

/// Runs before first paint so a dark-mode user never sees a white flash. It mirrors
/// `components::theme` (same storage key, same rule for "system").
const THEME_BOOT: &str = "(function(){try{var t=localStorage.getItem('clawloops-theme');\
var d=t==='dark'||(t!=='light'&&window.matchMedia('(prefers-color-scheme: dark)').matches);\
document.documentElement.classList.toggle('dark',d);}catch(e){}})();";

/// The Content-Security-Policy of every page: scripts only from this site, plus the page's own
/// inline scripts by their per-response `nonce` (Leptos puts it on the hydration scripts, and
/// the theme script carries it); WebAssembly may be compiled; styles from this site (and
/// inline `style` attributes, which the charts use); no plugins, no `<base>`, forms only to
/// this site, and no site may frame a page (clickjacking). Connections only to this site (the
/// development reloader's WebSocket too, when built by `cargo leptos watch`).
#[cfg(feature = "ssr")]
pub fn content_security_policy(nonce: &str) -> String {
    let connect = if option_env!("LEPTOS_WATCH").is_some() {
        "'self' ws: wss:"
    } else {
        "'self'"
    };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        nonce.as_ref(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) && let Ok(value) = axum::http::HeaderValue::from_str(&content_security_policy(nonce))
    {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <script nonce=nonce>{THEME_BOOT}</script>
                <AutoReload options=options.clone() />
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

/// The application: routes inside the common page frame.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_auth();
    // Every page renders completely on the server before it is sent (SsrMode::Async): a
    // redirect (sign-in, disabled, forced password change) is then a real HTTP redirect, and
    // pages read fine before the WASM bundle arrives.
    view! {
        <Title formatter=|page: String| {
            if page.is_empty() { "ClawLoops".to_owned() } else { format!("{page} · ClawLoops") }
        } />
        <Router>
            <AppShell>
                <Routes fallback=NotFoundPage>
                    // The dashboard and sign-in come with the first download; every other page
                    // is its own piece of the bundle, fetched when first opened (admin pages
                    // only ever by admins). See `lazy_pages!` below.
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/disabled") view=DisabledPage ssr=SsrMode::Async />
                    <Route
                        path=path!("/sso/link")
                        view={Lazy::<SsoLink>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/invite/:token")
                        view={Lazy::<Invite>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/account")
                        view={Lazy::<Account>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/workspace")
                        view={Lazy::<Workspace>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/account/password")
                        view={Lazy::<Password>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin")
                        view={Lazy::<AdminHome>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/users")
                        view={Lazy::<Users>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/users/:id")
                        view={Lazy::<UserDetail>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/invitations")
                        view={Lazy::<Invitations>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/invitations/new")
                        view={Lazy::<NewInvitation>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/invitations/:id")
                        view={Lazy::<InvitationDetail>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/audit")
                        view={Lazy::<Audit>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/runtimes")
                        view={Lazy::<Runtimes>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/models")
                        view={Lazy::<ModelsAdmin>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/usage")
                        view={Lazy::<UsageAdmin>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/limits")
                        view={Lazy::<Limits>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/breaker")
                        view={Lazy::<Breaker>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/admin/sign-in")
                        view={Lazy::<SignInAdmin>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route path=path!("/models") view={Lazy::<Models>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/usage") view={Lazy::<Usage>::new()} ssr=SsrMode::Async />
                </Routes>
            </AppShell>
        </Router>
    }
}

/// A route whose page is split off the first download (`cargo leptos build --split`): the
/// browser fetches its piece of the bundle the first time the page opens. On the server, and in
/// builds without `--split`, it is an ordinary route.
macro_rules! lazy_pages {
    ($($route:ident => $page:ident),* $(,)?) => {$(
        #[derive(Debug)]
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                view! { <$page /> }.into_any()
            }
        }
    )*};
}

lazy_pages! {
    Invite => InvitePage,
    SsoLink => SsoLinkPage,
    Account => AccountPage,
    Workspace => WorkspacePage,
    Password => PasswordPage,
    AdminHome => AdminHomePage,
    Users => UsersPage,
    UserDetail => UserDetailPage,
    Invitations => InvitationsPage,
    NewInvitation => NewInvitationPage,
    InvitationDetail => InvitationDetailPage,
    Audit => AuditPage,
    Runtimes => RuntimesPage,
    ModelsAdmin => ModelsAdminPage,
    UsageAdmin => UsageAdminPage,
    Limits => LimitsPage,
    Breaker => BreakerPage,
    SignInAdmin => SignInAdminPage,
    Models => ModelsPage,
    Usage => UsagePage,
}
