//! Prices of runtime time per size class, beside the models' token prices: what an hour of a
//! runtime's running time costs against its owner's budget.

use crate::api::budget::{
    ComputeClassForm, ComputeClassView, DeleteComputeClass, SaveComputeClass, get_compute_prices,
};
use crate::components::form::SaveOutcome;
use crate::components::ui::{ConfirmButton, Empty, ErrorNotice, Field, Loading, field_error};
use leptos::prelude::*;

/// The size classes with their prices, and a form to add or change one.
#[component]
pub fn ComputePricesSection() -> impl IntoView {
    let save = ServerAction::<SaveComputeClass>::new();
    let delete = ServerAction::<DeleteComputeClass>::new();
    let refresh = RwSignal::new(0u32);
    let prices = Resource::new(move || refresh.get(), |_| get_compute_prices());
    Effect::new(move |_| {
        let changed = [
            matches!(save.value().get(), Some(Ok(_))),
            delete.value().get().is_some(),
        ];
        if changed.contains(&true) {
            refresh.update(|n| *n += 1);
        }
    });
    let form = ClassFields::default();
    let result = Signal::derive(move || save.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SaveComputeClass { form: form.read() });
    };
    view! {
        <section class="card mt-6 space-y-4" aria-labelledby="compute-heading">
            <div>
                <h2 id="compute-heading" class="text-lg font-semibold">
                    "Runtime time prices"
                </h2>
                <p class="text-sm text-slate-600 dark:text-slate-400">
                    "What an hour of a runtime's running time costs, by size: a runtime belongs to the smallest class whose memory and CPUs cover its limits (the largest when none does). Running time counts against its owner's budget with their model requests."
                </p>
            </div>
            <ErrorNotice error=Signal::derive(move || delete.value().get().and_then(Result::err)) />
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match prices.await {
                        Ok(p) if p.classes.is_empty() => {
                            view! {
                                <Empty text="No size class: runtime time is free. Add one below." />
                            }
                                .into_any()
                        }
                        Ok(p) => {
                            let default_class = p.default_class.clone();
                            view! { <ClassTable classes=p.classes default_class form delete /> }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
            <form
                class="space-y-3"
                on:submit=submit
                aria-label="Add or change a size class"
                novalidate=true
            >
                <div class="grid gap-4 md:grid-cols-4">
                    <Field
                        name="class_name"
                        label="Size class"
                        value=form.name
                        hint="Saving an existing name changes it."
                        error=field_error(result, "name")
                    />
                    <Field
                        name="class_memory"
                        label="Memory up to (MiB)"
                        value=form.memory_mb
                        error=field_error(result, "memory_mb")
                    />
                    <Field
                        name="class_cpus"
                        label="CPUs up to"
                        value=form.cpus
                        error=field_error(result, "cpus")
                    />
                    <Field
                        name="class_price"
                        label="Price per hour ($)"
                        value=form.price
                        error=field_error(result, "price_per_hour")
                    />
                </div>
                <SaveOutcome
                    result
                    saved="Saved. Running time is charged at this price from now on."
                />
                <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                    "Save size class"
                </button>
            </form>
        </section>
    }
}

/// The form's inputs.
#[derive(Clone, Copy)]
struct ClassFields {
    name: RwSignal<String>,
    memory_mb: RwSignal<String>,
    cpus: RwSignal<String>,
    price: RwSignal<String>,
}

impl Default for ClassFields {
    fn default() -> Self {
        ClassFields {
            name: RwSignal::new(String::new()),
            memory_mb: RwSignal::new(String::new()),
            cpus: RwSignal::new(String::new()),
            price: RwSignal::new(String::new()),
        }
    }
}

impl ClassFields {
    fn read(self) -> ComputeClassForm {
        ComputeClassForm {
            name: self.name.get_untracked(),
            memory_mb: self.memory_mb.get_untracked(),
            cpus: self.cpus.get_untracked(),
            price_per_hour: self.price.get_untracked(),
        }
    }

    fn load(self, c: &ComputeClassView) {
        self.name.set(c.name.clone());
        self.memory_mb.set(c.memory_mb.to_string());
        self.cpus.set(c.cpus.to_string());
        self.price.set(c.price_per_hour.clone());
    }
}

#[component]
fn ClassTable(
    classes: Vec<ComputeClassView>,
    default_class: Option<String>,
    form: ClassFields,
    delete: ServerAction<DeleteComputeClass>,
) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>"Size class"</th>
                        <th>"Memory up to"</th>
                        <th>"CPUs up to"</th>
                        <th>"Price per hour"</th>
                        <th>"Runtimes"</th>
                        <th>
                            <span class="sr-only">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {classes
                        .into_iter()
                        .map(|c| {
                            let is_default = default_class.as_deref() == Some(c.name.as_str());
                            let edit = c.clone();
                            let name = c.name.clone();
                            view! {
                                <tr data-class=c.name.clone()>
                                    <td class="font-mono">
                                        {c.name.clone()}
                                        {is_default
                                            .then(|| {
                                                view! {
                                                    <span class="badge badge-accent ml-2">"default size"</span>
                                                }
                                            })}
                                    </td>
                                    <td class="tabular-nums">{format!("{} MiB", c.memory_mb)}</td>
                                    <td class="tabular-nums">{c.cpus.to_string()}</td>
                                    <td class="tabular-nums">{format!("${}", c.price_per_hour)}</td>
                                    <td class="tabular-nums">{c.runtimes}</td>
                                    <td class="flex gap-2">
                                        <button
                                            type="button"
                                            class="btn-secondary"
                                            on:click=move |_| form.load(&edit)
                                        >
                                            "Edit"
                                        </button>
                                        <ConfirmButton
                                            label="Delete"
                                            confirm_label="Delete size class"
                                            danger=true
                                            disabled=delete.pending()
                                            on_confirm=move || {
                                                delete
                                                    .dispatch(DeleteComputeClass {
                                                        name: name.clone(),
                                                    });
                                            }
                                        />
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
