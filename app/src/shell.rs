use crate::components::{auth::provide_auth, layout::AppShell};
use crate::pages::{
    account::{AccountPage, PasswordPage},
    admin::{
        AdminHomePage, AuditPage, InvitationDetailPage, InvitationsPage, LimitsPage,
        ModelsAdminPage, NewInvitationPage, RuntimesPage, UsageAdminPage, UserDetailPage,
        UsersPage,
    },
    errors::DisabledPage,
    home::HomePage,
    invite::InvitePage,
    login::LoginPage,
    models::ModelsPage,
    not_found::NotFoundPage,
    usage::UsagePage,
    workspace::WorkspacePage,
};
use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    SsrMode, StaticSegment,
    components::{Route, Router, Routes},
    path,
};

/// Runs before first paint so a dark-mode user never sees a white flash. It mirrors
/// `components::theme` (same storage key, same rule for "system").
const THEME_BOOT: &str = "(function(){try{var t=localStorage.getItem('clawloops-theme');\
var d=t==='dark'||(t!=='light'&&window.matchMedia('(prefers-color-scheme: dark)').matches);\
document.documentElement.classList.toggle('dark',d);}catch(e){}})();";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <script>{THEME_BOOT}</script>
                <AutoReload options=options.clone() />
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
        <Stylesheet id="leptos" href="/pkg/clawloops.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "ClawLoops".to_owned() } else { format!("{page} · ClawLoops") }
        } />
        <Router>
            <AppShell>
                <Routes fallback=NotFoundPage>
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/invite/:token") view=InvitePage ssr=SsrMode::Async />
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/workspace") view=WorkspacePage ssr=SsrMode::Async />
                    <Route path=path!("/account/password") view=PasswordPage ssr=SsrMode::Async />
                    <Route path=path!("/disabled") view=DisabledPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=AdminHomePage ssr=SsrMode::Async />
                    <Route path=path!("/admin/users") view=UsersPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/users/:id") view=UserDetailPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/invitations") view=InvitationsPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/invitations/new") view=NewInvitationPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/invitations/:id") view=InvitationDetailPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view=AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/runtimes") view=RuntimesPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/models") view=ModelsAdminPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/usage") view=UsageAdminPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/limits") view=LimitsPage ssr=SsrMode::Async />
                    <Route path=path!("/models") view=ModelsPage ssr=SsrMode::Async />
                    <Route path=path!("/usage") view=UsagePage ssr=SsrMode::Async />
                </Routes>
            </AppShell>
        </Router>
    }
}
