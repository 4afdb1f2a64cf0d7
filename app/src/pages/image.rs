//! `/image/:id`: everything Depot knows about one image, and how to fetch it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::get_image;
use crate::components::human_size;
use crate::error::CoreError;
use crate::model::Image;

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
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                image
                    .get()
                    .map(|result| match result {
                        Ok(image) => view! { <ImageDetail image/> }.into_any(),
                        Err(error) => {
                            view! {
                                <Title text="Image · Depot"/>
                                <h1>"Image"</h1>
                                <p class="error" role="alert">{error.to_string()}</p>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
}

#[component]
fn ImageDetail(image: Image) -> impl IntoView {
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
        <Show when=move || has_content>
            <p><a class="button" href=download.clone() download>"Download"</a></p>
            <p>"From a shell:"</p>
            <pre><code>{curl.clone()}</code></pre>
        </Show>
    }
}
