//! `/admin/tenants`: Coopr's tenants, for administrators: create one, add
//! a member (who may then make API keys for it) or take one out, delete one; and, with
//! `?tenant=NAME`, that tenant's image types, to create, edit and delete.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::{
    list_tenants, tenant_image_types, AddTenantMember, CreateTenant, DeleteImageType, DeleteTenant,
    RemoveTenantMember, SaveImageType,
};
use crate::components::{refusal, textarea_text, ErrorAlert};
use crate::model::{ImageType, TenantInfo};

fn tenant_href(name: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("tenant", name);
    format!("/admin/tenants?{}", query.finish())
}

#[component]
pub fn TenantsPage() -> impl IntoView {
    let query = use_query_map();
    let chosen = Memo::new(move |_| query.with(|q| q.get("tenant").unwrap_or_default()));
    let create = ServerAction::<CreateTenant>::new();
    let delete = ServerAction::<DeleteTenant>::new();
    let add_member = ServerAction::<AddTenantMember>::new();
    let remove_member = ServerAction::<RemoveTenantMember>::new();
    let save = ServerAction::<SaveImageType>::new();
    let remove = ServerAction::<DeleteImageType>::new();
    let tenants = Resource::new(
        move || {
            (
                create.version().get(),
                delete.version().get(),
                add_member.version().get(),
                remove_member.version().get(),
                save.version().get(),
                remove.version().get(),
            )
        },
        |_| list_tenants(),
    );
    let image_types = Resource::new(
        move || (chosen.get(), save.version().get(), remove.version().get()),
        |(tenant, ..)| async move {
            if tenant.is_empty() {
                Ok(None)
            } else {
                tenant_image_types(tenant).await.map(Some)
            }
        },
    );
    let refused = move || {
        refusal(create)
            .or_else(|| refusal(delete))
            .or_else(|| refusal(add_member))
            .or_else(|| refusal(remove_member))
            .or_else(|| refusal(save))
            .or_else(|| refusal(remove))
            .map(|error| view! { <ErrorAlert error/> })
    };
    view! {
        <Title text="Tenants · Depot"/>
        <h1>"Tenants"</h1>
        <p>"Coopr's tenants: each has its own image types, reached with an API key of a member's."</p>
        <ActionForm action=create attr:class="form narrow">
            <label for="tenant-name">"New tenant"</label>
            <input id="tenant-name" name="name" type="text" required maxlength="255" pattern="[A-Za-z0-9._\\-]+"/>
            <button type="submit">"Create tenant"</button>
        </ActionForm>
        {refused}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                tenants
                    .get()
                    .map(|result| match result {
                        Ok(tenants) => view! { <TenantTable tenants add_member remove_member delete/> }.into_any(),
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
        <Transition fallback=|| ()>
            {move || {
                image_types
                    .get()
                    .map(|result| match result {
                        Ok(Some(types)) => {
                            view! { <ImageTypes tenant=chosen.get() types save remove/> }.into_any()
                        }
                        Ok(None) => ().into_any(),
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn TenantTable(
    tenants: Vec<TenantInfo>,
    add_member: ServerAction<AddTenantMember>,
    remove_member: ServerAction<RemoveTenantMember>,
    delete: ServerAction<DeleteTenant>,
) -> impl IntoView {
    if tenants.is_empty() {
        return view! { <p class="empty">"No tenants yet."</p> }.into_any();
    }
    let rows = tenants
        .into_iter()
        .map(|tenant| {
            let name = tenant.name;
            let members = if tenant.members.is_empty() {
                view! { <span>"—"</span> }.into_any()
            } else {
                let members = tenant
                    .members
                    .into_iter()
                    .map(|member| {
                        let label = format!("Remove {member} from {name}");
                        let tenant = name.clone();
                        view! {
                            <li>
                                <ActionForm action=remove_member attr:class="inline">
                                    <input type="hidden" name="tenant" value=tenant/>
                                    <input type="hidden" name="username" value=member.clone()/>
                                    {member}
                                    <button type="submit" class="secondary" aria-label=label>"Remove"</button>
                                </ActionForm>
                            </li>
                        }
                    })
                    .collect_view();
                view! { <ul class="members">{members}</ul> }.into_any()
            };
            // Each form's children are a closure of their own: each gets its copies.
            let (for_member, for_delete) = (name.clone(), name.clone());
            let member_label = format!("Member to add to {name}");
            let confirm_text = format!("Yes, delete {name}");
            let delete_label = format!("Delete tenant {name}");
            view! {
                <tr>
                    <td><A href=tenant_href(&name)>{name.clone()}</A></td>
                    <td data-label="Image types" class="num">{tenant.image_types}</td>
                    <td data-label="Members">{members}</td>
                    <td data-label="Created">{tenant.created_at.format("%Y-%m-%d").to_string()}</td>
                    <td class="actions">
                        <ActionForm action=add_member attr:class="inline">
                            <input type="hidden" name="tenant" value=for_member/>
                            <input name="username" type="text" required aria-label=member_label placeholder="username"/>
                            <button type="submit" class="secondary">"Add member"</button>
                        </ActionForm>
                        <ActionForm action=delete attr:class="inline">
                            <input type="hidden" name="name" value=for_delete/>
                            <label class="check">
                                <input type="checkbox" name="confirm" value="yes" required/>
                                {confirm_text}
                            </label>
                            <button type="submit" class="secondary" aria-label=delete_label>"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing tenants">
            <caption>"Tenants"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Image types"</th>
                    <th scope="col">"Members"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// One tenant's image types: each editable in place, and a form for a new one.
#[component]
fn ImageTypes(
    tenant: String,
    types: Vec<ImageType>,
    save: ServerAction<SaveImageType>,
    remove: ServerAction<DeleteImageType>,
) -> impl IntoView {
    let rows = types
        .into_iter()
        .map(|image_type| {
            let providermap = serde_json::Value::Object(image_type.providermap).to_string();
            let name = image_type.name;
            let description = image_type.description;
            // Each form's children are a closure of their own: each gets its copies.
            let edit = (tenant.clone(), name.clone(), description.clone(), providermap.clone());
            let removal = (tenant.clone(), name.clone());
            let description_id = format!("description-{name}");
            let providermap_id = format!("providermap-{name}");
            let description_label = format!("Description of {name}");
            let providermap_label = format!("Provider map of {name} (JSON)");
            let save_label = format!("Save {name}");
            let delete_label = format!("Delete image type {name}");
            view! {
                <tr>
                    <td>{name.clone()}</td>
                    <td>
                        <details>
                            <summary>{description}</summary>
                            <ActionForm action=save attr:class="form">
                                <input type="hidden" name="tenant" value=edit.0/>
                                <input type="hidden" name="name" value=edit.1/>
                                <input type="hidden" name="replace" value="yes"/>
                                <label for=description_id.clone()>{description_label}</label>
                                <input id=description_id name="description" type="text" value=edit.2/>
                                <label for=providermap_id.clone()>{providermap_label}</label>
                                <textarea id=providermap_id name="providermap" rows="3" inner_html=textarea_text(&edit.3)></textarea>
                                <button type="submit" aria-label=save_label>"Save"</button>
                            </ActionForm>
                        </details>
                    </td>
                    <td data-label="Provider map"><code>{providermap}</code></td>
                    <td>
                        <ActionForm action=remove>
                            <input type="hidden" name="tenant" value=removal.0/>
                            <input type="hidden" name="name" value=removal.1/>
                            <button type="submit" class="secondary" aria-label=delete_label>"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let new_type_tenant = tenant.clone();
    view! {
        <h2>{format!("Image types of {tenant}")}</h2>
        <table class="listing image-types">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Description"</th>
                    <th scope="col">"Provider map"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <h3>"New image type"</h3>
        <ActionForm action=save attr:class="form">
            <input type="hidden" name="tenant" value=new_type_tenant/>
            <label for="type-name">"Name"</label>
            <input id="type-name" name="name" type="text" required pattern="[A-Za-z0-9._\\-]+"/>
            <label for="type-description">"Description"</label>
            <input id="type-description" name="description" type="text"/>
            <label for="type-providermap">"Provider map (JSON)"</label>
            <textarea id="type-providermap" name="providermap" rows="3">"{\"openstack\": {\"flavor\": \"m1.small\"}}"</textarea>
            <button type="submit">"Create image type"</button>
        </ActionForm>
    }
}
