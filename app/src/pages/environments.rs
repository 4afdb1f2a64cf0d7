//! `/environments`: the signed-in user's execution environments, passwords
//! masked, and a form to register one. The same records ViCE's
//! `/v1/environments` serves.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{list_environments, CreateEnvironment, DeleteEnvironment};
use crate::components::{page_from_url, refusal, ErrorAlert, ListPager, SignInPrompt};
use crate::error::CoreError;
use crate::model::{Environment, ManagementLayerType, RuntimeTechnologyType, MASKED_PASSWORD};

#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    let create = ServerAction::<CreateEnvironment>::new();
    let delete = ServerAction::<DeleteEnvironment>::new();
    // Asked again after each registration or deletion. The list is redrawn
    // in place, so a refused form keeps what was typed.
    let page = page_from_url();
    let environments = Resource::new(
        move || (page.get(), create.version().get(), delete.version().get()),
        |(page, ..)| list_environments(page),
    );
    let refused = move || {
        refusal(create)
            .or_else(|| refusal(delete))
            .map(|error| view! { <ErrorAlert error/> })
    };
    view! {
        <Title text="Environments · Depot"/>
        <h1>"Environments"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                environments
                    .get()
                    .map(|result| match result {
                        Ok(environments) => {
                            let (page, pages) = environments.position();
                            view! {
                                <EnvironmentTable environments=environments.items delete/>
                                <ListPager base="/environments" page pages/>
                                <RegisterForm create/>
                            }
                                .into_any()
                        }
                        Err(CoreError::Unauthenticated) => {
                            view! { <SignInPrompt purpose="to see your environments."/> }.into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
        {refused}
    }
}

/// "basic OpenStack 2023.1": a layer's words, leaving out the empty ones.
fn layer_text(kind: &str, software: &str, version: &str) -> String {
    [kind, software, version]
        .into_iter()
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
fn EnvironmentTable(
    environments: Vec<Environment>,
    delete: ServerAction<DeleteEnvironment>,
) -> impl IntoView {
    if environments.is_empty() {
        return view! { <p class="empty">"No environments yet."</p> }.into_any();
    }
    let caption = match environments.len() {
        1 => "1 environment".to_owned(),
        count => format!("{count} environments"),
    };
    let rows = environments
        .into_iter()
        .map(|environment| {
            let management = &environment.management_layer;
            let runtime = &environment.runtime_technology;
            let management = layer_text(
                management.kind.as_str(),
                &management.software,
                &management.version,
            );
            let runtime = layer_text(runtime.kind.as_str(), &runtime.software, &runtime.version);
            // Only whether a password is set ever leaves the server.
            let password = if environment.has_password {
                MASKED_PASSWORD
            } else {
                "none"
            };
            view! {
                <tr>
                    <td data-label="Id" class="num">{environment.id}</td>
                    <td>{environment.title}</td>
                    <td data-label="Owner" class="owner">{environment.owner}</td>
                    <td data-label="Management layer">{management}</td>
                    <td data-label="Runtime technology">{runtime}</td>
                    <td data-label="Location"><code>{environment.location}</code></td>
                    <td data-label="Username">{environment.username}</td>
                    <td data-label="Password" class="password">{password}</td>
                    <td>
                        <ActionForm action=delete>
                            <input type="hidden" name="id" value=environment.id.to_string()/>
                            <button type="submit" class="secondary">"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing environments">
            <caption>{caption}</caption>
            <thead>
                <tr>
                    <th scope="col">"Id"</th>
                    <th scope="col">"Title"</th>
                    <th scope="col">"Owner"</th>
                    <th scope="col">"Management layer"</th>
                    <th scope="col">"Runtime technology"</th>
                    <th scope="col">"Location"</th>
                    <th scope="col">"Username"</th>
                    <th scope="col">"Password"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// One `<option>` per word of a ViCE enumeration.
fn options(words: impl Iterator<Item = &'static str>) -> impl IntoView {
    words
        .map(|word| view! { <option value=word>{word}</option> })
        .collect_view()
}

#[component]
fn RegisterForm(create: ServerAction<CreateEnvironment>) -> impl IntoView {
    // A registered environment empties the form for the next one (the list
    // above is redrawn in place, and typed values would otherwise stay).
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            if let Some(form) = form.get_untracked() {
                form.reset();
            }
        }
    });
    view! {
        <h2>"Register an environment"</h2>
        <ActionForm action=create node_ref=form attr:class="form environment">
            <label for="env-title">"Title"</label>
            <input id="env-title" name="environment[title]" type="text" required/>
            <fieldset>
                <legend>"Management layer"</legend>
                <label for="env-mgmt-type">"Type"</label>
                <select id="env-mgmt-type" name="environment[management_type]">
                    {options(ManagementLayerType::ALL.iter().map(|kind| kind.as_str()))}
                </select>
                <label for="env-mgmt-software">"Software"</label>
                <input id="env-mgmt-software" name="environment[management_software]" type="text"/>
                <label for="env-mgmt-version">"Version"</label>
                <input id="env-mgmt-version" name="environment[management_version]" type="text"/>
            </fieldset>
            <fieldset>
                <legend>"Runtime technology"</legend>
                <label for="env-rt-type">"Type"</label>
                <select id="env-rt-type" name="environment[runtime_type]">
                    {options(RuntimeTechnologyType::ALL.iter().map(|kind| kind.as_str()))}
                </select>
                <label for="env-rt-software">"Software"</label>
                <input id="env-rt-software" name="environment[runtime_software]" type="text"/>
                <label for="env-rt-version">"Version"</label>
                <input id="env-rt-version" name="environment[runtime_version]" type="text"/>
            </fieldset>
            <fieldset>
                <legend>"Credentials"</legend>
                <label for="env-location">"Location"</label>
                <input
                    id="env-location"
                    name="environment[location]"
                    type="text"
                    placeholder="file:///srv/exports or https://cloud.example:5000"
                    required
                />
                <label for="env-username">"Username"</label>
                <input
                    id="env-username"
                    name="environment[username]"
                    type="text"
                    autocomplete="off"
                />
                <label for="env-password">"Password"</label>
                <input
                    id="env-password"
                    name="environment[password]"
                    type="password"
                    autocomplete="new-password"
                />
            </fieldset>
            <button type="submit">"Register"</button>
        </ActionForm>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_read_as_words_without_gaps() {
        assert_eq!(layer_text("basic", "", "1.2"), "basic 1.2");
        assert_eq!(
            layer_text("cloudcomputing", "OpenStack", "2023.1"),
            "cloudcomputing OpenStack 2023.1"
        );
    }
}
