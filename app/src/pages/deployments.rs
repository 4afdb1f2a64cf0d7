//! `/deployments`: the signed-in user's deployments (everyone's, with their
//! owners, for an admin), newest first, and the state of each
//! one's job. With WASM the list asks again every second while a job may
//! still change it; without, the Refresh link does.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::{list_deployments, DeleteDeployment};
use crate::components::{page_from_url, refusal, ErrorAlert, ListPager, SignInPrompt};
use crate::error::CoreError;
use crate::model::Deployment;

/// How often a list with queued or running deployments is asked again.
const POLL_EVERY: Duration = Duration::from_secs(1);

#[component]
pub fn DeploymentsPage() -> impl IntoView {
    let polls = RwSignal::new(0u32);
    let delete = ServerAction::<DeleteDeployment>::new();
    let page = page_from_url();
    let deployments = Resource::new(
        move || (page.get(), polls.get(), delete.version().get()),
        |(page, ..)| list_deployments(page),
    );
    let refused = move || refusal(delete).map(|error| view! { <ErrorAlert error/> });
    // Effects run only in the browser, so the server renders once and stops.
    Effect::new(move |_| {
        let pending = matches!(
            deployments.get(),
            Some(Ok(list)) if list.items.iter().any(|deployment| deployment.state.is_pending())
        );
        if pending {
            set_timeout(
                // The page may be gone by then: a disposed signal is left alone.
                move || {
                    polls.try_update(|count| *count += 1);
                },
                POLL_EVERY,
            );
        }
    });
    view! {
        <Title text="Deployments · Depot"/>
        <h1>"Deployments"</h1>
        <p>"Deleting a finished deployment removes the file it wrote from its environment."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                deployments
                    .get()
                    .map(|result| match result {
                        Ok(deployments) => {
                            let (page, pages) = deployments.position();
                            let total = deployments.total;
                            view! {
                                <DeploymentTable deployments=deployments.items total delete/>
                                <ListPager base="/deployments" page pages/>
                            }
                                .into_any()
                        }
                        Err(CoreError::Unauthenticated) => {
                            view! { <SignInPrompt purpose="to see your deployments."/> }.into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
        {refused}
    }
}

#[component]
fn DeploymentTable(
    deployments: Vec<Deployment>,
    /// How many there are on every page.
    total: u64,
    delete: ServerAction<DeleteDeployment>,
) -> impl IntoView {
    if deployments.is_empty() {
        return view! {
            <p class="empty">"No deployments yet: deploy an image from its page."</p>
        }
        .into_any();
    }
    let caption = match total {
        1 => "1 deployment".to_owned(),
        count => format!("{count} deployments"),
    };
    let rows = deployments
        .into_iter()
        .map(|deployment| {
            let state = deployment.state.as_str();
            view! {
                <tr id=format!("deployment-{}", deployment.id)>
                    <td data-label="Id" class="num">{deployment.id}</td>
                    <td>{deployment.title}</td>
                    <td data-label="Owner" class="owner">{deployment.owner}</td>
                    <td data-label="Image">
                        {match deployment.image_id {
                            Some(image) => view! {
                                <A href=format!("/image/{image}")>{deployment.image_name}</A>
                            }.into_any(),
                            None => view! { <span class="empty">"(deleted)"</span> }.into_any(),
                        }}
                    </td>
                    <td data-label="Environment">{deployment.environment_title}</td>
                    <td data-label="State"><span class=format!("state state-{state}")>{state}</span></td>
                    <td data-label="Reason" class="reason">{deployment.reason}</td>
                    <td data-label="Started" class="col-created">
                        {deployment.created_at.format("%Y-%m-%d %H:%M:%S").to_string()}
                    </td>
                    <td data-label="Updated">{deployment.updated_at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                    <td>
                        <ActionForm action=delete>
                            <input type="hidden" name="id" value=deployment.id.to_string()/>
                            <button type="submit" class="secondary">"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing deployments">
            <caption>{caption}</caption>
            <thead>
                <tr>
                    <th scope="col">"Id"</th>
                    <th scope="col">"Title"</th>
                    <th scope="col">"Owner"</th>
                    <th scope="col">"Image"</th>
                    <th scope="col">"Environment"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Reason"</th>
                    <th scope="col" class="col-created">"Started"</th>
                    <th scope="col">"Updated"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <p><A href="/deployments">"Refresh"</A></p>
    }
    .into_any()
}
