//! The new invitation form, and the link shown once.

use super::*;

/// The form to invite someone.
#[component]
pub fn NewInvitationPage() -> impl IntoView {
    let role = RwSignal::new("user".to_owned());
    let username = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let hours = RwSignal::new("72".to_owned());
    let create = ServerAction::<CreateInvitation>::new();
    let result = Signal::derive(move || create.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let expires_in_hours = hours.get_untracked().trim().parse().unwrap_or(-1);
        create.dispatch(CreateInvitation {
            form: NewInvitationForm {
                role: Role::parse(&role.get_untracked()).unwrap_or(Role::User),
                username: username.get_untracked(),
                email: email.get_untracked(),
                note: note.get_untracked(),
                expires_in_hours,
            },
        });
    };
    let roles: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), r.label().to_owned()))
        .collect();
    let (min, max) = EXPIRY_HOURS;
    view! {
        <Title text="New invitation" />
        <RequireUser admin=true>
            <PageHeader
                title="New invitation".into()
                subtitle="Make a link for one person. They choose their password when they accept it."
            />
            <AdminNav />
            <div class="grid gap-6 lg:grid-cols-2">
                <form class="card space-y-4" on:submit=submit novalidate>
                    <ErrorNotice error=form_error(result) />
                    <Select
                        name="role"
                        label="Role"
                        value=role
                        options=roles.clone()
                        hint="Admins can invite people and manage every account."
                    />
                    <Field
                        name="username"
                        label="Username (optional)"
                        value=username
                        hint=USERNAME_POLICY
                        error=field_error(result, "username")
                    />
                    <Field
                        name="email"
                        label="E-mail (optional)"
                        kind="email"
                        value=email
                        error=field_error(result, "email")
                    />
                    <Field
                        name="note"
                        label="Note for other admins (optional)"
                        value=note
                        error=field_error(result, "note")
                    />
                    <Field
                        name="expires_in_hours"
                        label="Valid for (hours)"
                        kind="number"
                        value=hours
                        required=true
                        hint="From 1 hour to 720 hours (30 days)."
                        error=field_error(result, "expires_in_hours")
                    />
                    <p class="sr-only">{format!("Between {min} and {max} hours.")}</p>
                    <button
                        type="submit"
                        class="btn-primary"
                        disabled=move || create.pending().get()
                    >
                        {move || {
                            if create.pending().get() { "Creating…" } else { "Create invitation" }
                        }}
                    </button>
                </form>
                {move || result.get().and_then(Result::ok).map(|link| view! { <LinkOnce link /> })}
            </div>
        </RequireUser>
    }
}
