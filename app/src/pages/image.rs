//! `/image/:id`: everything Depot knows about one image, and how to fetch it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{current_user, deploy_targets, get_image, DeleteImage, DeployImage, EditImage};
use crate::components::{human_size, refusal, textarea_text, ErrorAlert};
use crate::dates;
use crate::error::CoreError;
use crate::model::{DiskFormat, Environment, Image, ImageKind, Role};

#[component]
pub fn ImagePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|id| id.parse::<i64>().ok()));
    let edit = ServerAction::<EditImage>::new();
    // Read again after each save, so that the page shows the new version.
    let image = Resource::new(
        move || (id(), edit.version().get()),
        |(id, _)| async move {
            match id {
                Some(id) => get_image(id).await,
                None => Err(CoreError::not_found("image")),
            }
        },
    );
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
                let admin = matches!(
                    viewer.get(),
                    Some(Ok(Some(user))) if user.role == Role::Admin
                );
                let may_change = move |image: &Image| {
                    admin
                        || matches!(
                            viewer.get(),
                            Some(Ok(Some(user))) if image.owner_id == Some(user.id)
                        )
                };
                image
                    .get()
                    .map(|result| match result {
                        Ok(image) => {
                            let changeable = may_change(&image);
                            view! { <ImageDetail image targets changeable admin edit/> }
                                .into_any()
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
fn ImageDetail(
    image: Image,
    targets: DeployTargets,
    /// The viewer owns the image or is an admin.
    changeable: bool,
    admin: bool,
    edit: ServerAction<EditImage>,
) -> impl IntoView {
    let download = format!("/api/images/{}/download", image.id);
    let size = image
        .size
        .map(|size| format!("{} ({size} bytes)", human_size(size)))
        .unwrap_or_else(|| "no file".into());
    let path = image.path();
    let owner = image.owner.clone().unwrap_or_else(|| "—".into());
    let visibility = if image.public { "public" } else { "private" };
    let has_content = image.has_content();
    let commands = dialect_commands(&image)
        .into_iter()
        .map(|(label, command)| view! { <CopyLine label command/> })
        .collect_view();
    let vice = image.vice.clone();
    let has_vice = vice.title.is_some() || vice.image_type.is_some();
    let mws = image.mws.clone();
    let has_mws = mws.os_type.is_some();
    let found = image.inspection.clone();
    let inspected = found.detail.is_some();
    let virtual_size = image
        .virtual_size
        .map(|size| format!("{} ({size} bytes)", human_size(size)))
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
    let description = image.description.clone();
    let has_description = !description.is_empty();
    let editing = image.clone();
    view! {
        <Title text=format!("{} · Depot", image.name)/>
        <h1>{image.name.clone()}</h1>
        <dl class="facts">
            <dt>"Kind"</dt><dd>{image.kind.as_str()}</dd>
            <dt>"Format"</dt><dd>{image.format.map(|f| f.as_str()).unwrap_or("—")}</dd>
            <dt>"Size"</dt><dd class="size">{size}</dd>
            <dt>"SHA-256"</dt><dd><code class="sha256">{image.sha256.clone().unwrap_or_else(|| "—".into())}</code></dd>
            <dt>"Label"</dt><dd class="label">{image.label.clone()}</dd>
            <dt>"Path"</dt><dd><code>{path}</code></dd>
            <dt>"Owner"</dt><dd>{owner}</dd>
            <dt>"Visibility"</dt><dd>{visibility}</dd>
            <dt>"Created"</dt><dd>{dates::second(image.created_at)}</dd>
            <dt>"Updated"</dt><dd>{dates::second(image.updated_at)}</dd>
        </dl>
        <Show when=move || has_description>
            <h2>"Description"</h2>
            <p class="description">{description.clone()}</p>
        </Show>
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
        </Show>
        <h2>"From a shell"</h2>
        <p>
            "Each API that serves this image, with "<code>"DEPOT_URL"</code>" set to this server and "
            <code>"USER"</code>" to your username (or a token, from the Tokens page):"
        </p>
        <div class="commands">{commands}</div>
        <DeploySection image_id=image.id default_title=image.name.clone() targets/>
        <Show when=move || changeable>
            <EditSection image=editing.clone() admin edit/>
            <DeleteSection image_id=image.id/>
        </Show>
    }
}

/// The curl commands that fetch this image (its record, its bytes) through
/// each API that serves it: Depot's own, VSS (VM images and ISOs only,
/// public ones from the catalog, private ones from the owner's list), ViCE
/// and MWS.
fn dialect_commands(image: &Image) -> Vec<(String, String)> {
    let id = image.id;
    let get = |path: String| format!("curl -u USER \"$DEPOT_URL{path}\"");
    let save = |path: String| format!("curl -u USER -OJ \"$DEPOT_URL{path}\"");
    let mut commands = Vec::new();
    if image.has_content() {
        commands.push((
            "Download (Depot API)".to_owned(),
            save(format!("/api/images/{id}/download")),
        ));
    }
    let vss = match (image.kind, image.public) {
        (ImageKind::Vm, true) => Some(format!("/v2/image/{id}")),
        (ImageKind::Iso, true) => Some(format!("/v2/iso/{id}")),
        (ImageKind::Vm, false) => Some(format!("/v2/user/image/vm?filter=id,eq,{id}")),
        (ImageKind::Iso, false) => Some(format!("/v2/user/image/iso?filter=id,eq,{id}")),
        _ => None,
    };
    if let Some(path) = vss {
        commands.push(("Record (VSS)".to_owned(), get(path)));
    }
    commands.push(("Record (ViCE)".to_owned(), get(format!("/v1/image/{id}"))));
    if image.has_content() {
        commands.push((
            "Download (ViCE)".to_owned(),
            save(format!("/v1/image/{id}/file")),
        ));
    }
    commands.push((
        "Record (MWS)".to_owned(),
        get(format!("/mws/rest/images/{id}?api-version=3")),
    ));
    commands
}

/// A command to run in a shell, with a button that copies it.
#[component]
fn CopyLine(label: String, command: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = {
        let command = command.clone();
        move |_| {
            let _ = window().navigator().clipboard().write_text(&command);
            copied.set(true);
        }
    };
    view! {
        <div class="command">
            <span class="command-label">{label.clone()}</span>
            <pre><code>{command}</code></pre>
            <button type="button" class="secondary copy" on:click=copy aria-label=format!("Copy: {label}")>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

/// "Edit": name, label and description for the owner or an admin, and the
/// visibility for an admin. The form carries the version it was made from,
/// so that a save over someone else's newer change is refused, not lost.
#[component]
fn EditSection(image: Image, admin: bool, edit: ServerAction<EditImage>) -> impl IntoView {
    let refused = move || refusal(edit).map(|error| view! { <ErrorAlert error/> });
    let saved = move || {
        matches!(edit.value().get(), Some(Ok(_)))
            .then(|| view! { <p class="state done" role="status">"Saved."</p> })
    };
    let public = image.public;
    view! {
        <h2>"Edit"</h2>
        <ActionForm action=edit attr:class="form edit">
            <input type="hidden" name="id" value=image.id.to_string()/>
            <input type="hidden" name="version" value=image.version.to_string()/>
            <label for="edit-name">"Name"</label>
            <input id="edit-name" name="name" type="text" required maxlength="255" value=image.name.clone()/>
            <label for="edit-label">"Label"</label>
            <input id="edit-label" name="label" type="text" maxlength="255" value=image.label.clone()/>
            <label for="edit-description">"Description"</label>
            <textarea
                id="edit-description"
                name="description"
                rows="4"
                maxlength="4000"
                inner_html=textarea_text(&image.description)
            ></textarea>
            <Show when=move || admin>
                <label for="edit-visibility">"Visibility"</label>
                <select id="edit-visibility" name="visibility">
                    <option value="private" selected=!public>"private"</option>
                    <option value="public" selected=public>"public"</option>
                </select>
            </Show>
            <button type="submit">"Save changes"</button>
        </ActionForm>
        {saved}
        {refused}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(kind: ImageKind, public: bool, bytes: bool) -> Image {
        Image {
            id: 7,
            kind,
            name: "x".into(),
            label: String::new(),
            description: String::new(),
            folder: String::new(),
            data_store: "depot".into(),
            public,
            owner_id: None,
            owner: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            size: None,
            sha256: bytes.then(|| "ab".repeat(32)),
            format: None,
            virtual_size: None,
            version: 1,
            mws: Default::default(),
            vice: Default::default(),
            inspection: Default::default(),
        }
    }

    #[test]
    fn every_api_that_serves_the_image_has_its_command() {
        let labels = |image: &Image| {
            dialect_commands(image)
                .into_iter()
                .map(|(l, _)| l)
                .collect::<Vec<_>>()
        };
        let public_vm = dialect_commands(&image(ImageKind::Vm, true, true));
        assert!(
            public_vm.iter().any(|(_, c)| c.ends_with("/v2/image/7\"")),
            "{public_vm:?}"
        );
        let private_iso = dialect_commands(&image(ImageKind::Iso, false, true));
        assert!(private_iso
            .iter()
            .any(|(_, c)| c.contains("/v2/user/image/iso?filter=id,eq,7")));
        assert!(private_iso
            .iter()
            .any(|(_, c)| c.contains("-OJ \"$DEPOT_URL/api/images/7/download\"")));
        // A record without bytes has nothing to download; VSS serves no disks.
        let definition = labels(&image(ImageKind::Definition, true, false));
        assert_eq!(definition, ["Record (ViCE)", "Record (MWS)"]);
    }
}
