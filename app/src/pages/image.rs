//! `/image/:id`: everything Depot knows about one image, and how to fetch it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{current_user, deploy_targets, get_image, DeleteImage, DeployImage};
use crate::components::{human_size, refusal, ErrorAlert};
use crate::error::CoreError;
use crate::model::{DiskFormat, Environment, Image, Role};

#[component]
pub fn ImagePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|id| id.parse::<i64>().ok()));
    let image = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_image(id).await,
            None => Err(CoreError::not_found("image")),
        }
    });
    // Made here, beside the image's, and only read inside the Transition: a
    // resource created while the Transition renders would be created again
    // on each of the server's checks for pending work, and the page would
    // never be sent (leptos#4866).
    let targets = Resource::new(id, |id| async move {
        match id {
            Some(id) => deploy_targets(id).await,
            None => Ok(None),
        }
    });
    let viewer = Resource::new(id, |_| current_user());
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                let may_change = move |image: &Image| {
                    matches!(
                        viewer.get(),
                        Some(Ok(Some(user)))
                            if user.role == Role::Admin || image.owner_id == Some(user.id)
                    )
                };
                image
                    .get()
                    .map(|result| match result {
                        Ok(image) => {
                            let deletable = may_change(&image);
                            view! { <ImageDetail image targets deletable/> }.into_any()
                        }
                        Err(error) => {
                            view! {
                                <Title text="Image · Depot"/>
                                <h1>"Image"</h1>
                                <ErrorAlert error/>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
}

/// Where the viewer may deploy the image (see [`deploy_targets`]).
type DeployTargets = Resource<Result<Option<Vec<Environment>>, CoreError>>;

#[component]
fn ImageDetail(image: Image, targets: DeployTargets, deletable: bool) -> impl IntoView {
    let download = format!("/api/images/{}/download", image.id);
    let curl = format!("curl -u USER -OJ \"$DEPOT_URL{download}\"");
    let size = image
        .size
        .map(|size| format!("{} ({size} bytes)", human_size(size as f64)))
        .unwrap_or_else(|| "no file".into());
    let path = image.path();
    let owner = image.owner.clone().unwrap_or_else(|| "—".into());
    let visibility = if image.public { "public" } else { "private" };
    let has_content = image.has_content();
    let vice_file = format!("curl -u USER -OJ \"$DEPOT_URL/v1/image/{}/file\"", image.id);
    let mws_record = format!(
        "curl -u USER \"$DEPOT_URL/mws/rest/images/{}?api-version=3\"",
        image.id
    );
    let vice = image.vice.clone();
    let has_vice = vice.title.is_some() || vice.image_type.is_some();
    let mws = image.mws.clone();
    let has_mws = mws.os_type.is_some();
    let found = image.inspection.clone();
    let inspected = found.detail.is_some();
    let virtual_size = image
        .virtual_size
        .map(|size| format!("{} ({size} bytes)", human_size(size as f64)))
        .unwrap_or_else(|| "—".into());
    let guest_os = mws.os_type.clone().unwrap_or_else(|| "—".into());
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "—".into());
    let memory = found
        .memory_mib
        .map(|mib| format!("{mib} MiB"))
        .unwrap_or_else(|| "—".into());
    let cpus = found
        .cpus
        .map(|cpus| cpus.to_string())
        .unwrap_or_else(|| "—".into());
    let networks = if found.networks.is_empty() {
        "—".to_owned()
    } else {
        found.networks.join(", ")
    };
    let has_ovf = matches!(image.format, Some(DiskFormat::Ova | DiskFormat::Ovf));
    let appliance = found.clone();
    view! {
        <Title text=format!("{} · Depot", image.name)/>
        <h1>{image.name.clone()}</h1>
        <dl class="facts">
            <dt>"Kind"</dt><dd>{image.kind.as_str()}</dd>
            <dt>"Format"</dt><dd>{image.format.map(|f| f.as_str()).unwrap_or("—")}</dd>
            <dt>"Size"</dt><dd class="size">{size}</dd>
            <dt>"SHA-256"</dt><dd><code class="sha256">{image.sha256.clone().unwrap_or_else(|| "—".into())}</code></dd>
            <dt>"Label"</dt><dd>{image.label.clone()}</dd>
            <dt>"Path"</dt><dd><code>{path}</code></dd>
            <dt>"Owner"</dt><dd>{owner}</dd>
            <dt>"Visibility"</dt><dd>{visibility}</dd>
            <dt>"Created"</dt><dd>{image.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</dd>
            <dt>"Updated"</dt><dd>{image.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</dd>
        </dl>
        <Show when=move || inspected>
            <h2>"Inspection"</h2>
            <dl class="facts inspection">
                <dt>"Detected format"</dt><dd>{shown(&found.detail)}</dd>
                <dt>"Virtual size"</dt><dd>{virtual_size.clone()}</dd>
                <dt>"Volume label"</dt><dd>{shown(&found.volume_label)}</dd>
            </dl>
        </Show>
        <Show when=move || has_ovf>
            <h2>"Appliance (OVF)"</h2>
            <dl class="facts ovf">
                <dt>"Guest OS"</dt><dd>{guest_os.clone()}</dd>
                <dt>"CPUs"</dt><dd>{cpus.clone()}</dd>
                <dt>"Memory"</dt><dd>{memory.clone()}</dd>
                <dt>"Product"</dt><dd>{shown(&appliance.product)}</dd>
                <dt>"Vendor"</dt><dd>{shown(&appliance.vendor)}</dd>
                <dt>"Version"</dt><dd>{shown(&appliance.product_version)}</dd>
                <dt>"Networks"</dt><dd>{networks.clone()}</dd>
            </dl>
        </Show>
        <Show when=move || has_vice>
            <h2>"ViCE registry"</h2>
            <dl class="facts vice">
                <dt>"Title"</dt><dd>{vice.title.clone().unwrap_or_default()}</dd>
                <dt>"Image type"</dt><dd>{vice.image_type.clone().unwrap_or_default()}</dd>
                <dt>"Imported"</dt><dd>{if vice.imported { "yes" } else { "no" }}</dd>
                <dt>"Origin environment"</dt><dd>{vice.origin_environment.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Environment reference"</dt><dd>{vice.environment_ref.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Specifics"</dt><dd><code>{vice.specifics.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "{}".into())}</code></dd>
            </dl>
        </Show>
        <Show when=move || has_mws>
            <h2>"Provisioning (MWS)"</h2>
            <dl class="facts mws">
                <dt>"OS type"</dt><dd>{mws.os_type.clone().unwrap_or_default()}</dd>
                <dt>"Type"</dt><dd>{mws.provisioning_type.clone().unwrap_or_default()}</dd>
                <dt>"Hypervisor"</dt><dd>{match &mws.hypervisor_type { Some(kind) if mws.hypervisor => kind.clone(), _ => "no".into() }}</dd>
                <dt>"Active"</dt><dd>{if mws.active { "yes" } else { "no" }}</dd>
                <dt>"Version"</dt><dd>{image.version}</dd>
            </dl>
        </Show>
        <Show when=move || has_content>
            <p><a class="button" href=download.clone() download>"Download"</a></p>
            <p>"From a shell:"</p>
            <pre><code>{curl.clone()}</code></pre>
            <p>"Through ViCE:"</p>
            <pre><code>{vice_file.clone()}</code></pre>
        </Show>
        <p>"Its record through MWS:"</p>
        <pre><code>{mws_record}</code></pre>
        <DeploySection image_id=image.id default_title=image.name.clone() targets/>
        <Show when=move || deletable>
            <DeleteSection image_id=image.id/>
        </Show>
    }
}

/// "Delete": for the image's owner or an admin, after a confirmation that
/// the browser and the server both ask for.
#[component]
fn DeleteSection(image_id: i64) -> impl IntoView {
    let delete = ServerAction::<DeleteImage>::new();
    let refused = move || refusal(delete).map(|error| view! { <ErrorAlert error/> });
    view! {
        <h2>"Delete"</h2>
        <ActionForm action=delete attr:class="form delete">
            <input type="hidden" name="id" value=image_id.to_string()/>
            <label class="check">
                <input type="checkbox" name="confirm" value="yes" required/>
                "Yes, delete this image and its file"
            </label>
            <button type="submit" class="danger">"Delete image"</button>
        </ActionForm>
        {refused}
    }
}

/// "Deploy": for the image's owner (or an admin), into one of their
/// environments, through the same core function as ViCE's `POST /v1/deploy`.
#[component]
fn DeploySection(image_id: i64, default_title: String, targets: DeployTargets) -> impl IntoView {
    let deploy = ServerAction::<DeployImage>::new();
    let refused = move || refusal(deploy).map(|error| view! { <ErrorAlert error/> });
    view! {
            {move || {
                let default_title = default_title.clone();
                targets
                    .get()
                    .map(move |result| match result {
                        Ok(Some(environments)) if !environments.is_empty() => {
                            view! { <DeployForm deploy image_id default_title environments/> }
                                .into_any()
                        }
                        Ok(Some(_)) => {
                            view! {
                                <h2>"Deploy"</h2>
                                <p>
                                    <A href="/environments">"Register an environment"</A>
                                    " to deploy this image into it."
                                </p>
                            }
                                .into_any()
                        }
                        _ => ().into_any(),
                    })
            }}
        {refused}
    }
}

#[component]
fn DeployForm(
    deploy: ServerAction<DeployImage>,
    image_id: i64,
    default_title: String,
    environments: Vec<Environment>,
) -> impl IntoView {
    let options = environments
        .into_iter()
        .map(|environment| {
            let label = format!("{} ({})", environment.title, environment.location);
            view! { <option value=environment.id.to_string()>{label}</option> }
        })
        .collect_view();
    view! {
        <h2>"Deploy"</h2>
        <ActionForm action=deploy attr:class="form deploy">
            <input type="hidden" name="image_id" value=image_id.to_string()/>
            <label for="deploy-environment">"Environment"</label>
            <select id="deploy-environment" name="environment_id">{options}</select>
            <label for="deploy-title">"Deployment title"</label>
            <input id="deploy-title" name="title" type="text" value=default_title/>
            <button type="submit">"Deploy"</button>
        </ActionForm>
    }
}
