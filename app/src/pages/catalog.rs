//! `/`: the catalog, with search, kind, order and page in the URL, so that
//! every view can be bookmarked and works without WASM.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

use crate::api::{list_images, CatalogParams, CatalogSort};
use crate::components::{human_size, ErrorAlert};
use crate::model::{DiskFormat, ImageKind, ImagePage};

/// The URL of the catalog with these parameters, leaving defaults out.
fn catalog_href(params: &CatalogParams, page: u64) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !params.q.is_empty() {
        query.append_pair("q", &params.q);
    }
    if let Some(kind) = params.kind {
        query.append_pair("kind", kind.as_str());
    }
    if let Some(format) = params.format {
        query.append_pair("format", format.as_str());
    }
    if params.mine {
        query.append_pair("mine", "true");
    }
    if params.sort != CatalogSort::default() {
        query.append_pair("sort", params.sort.as_str());
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{query}")
    }
}

#[component]
pub fn CatalogPage() -> impl IntoView {
    let query = use_query_map();
    let params = Memo::new(move |_| {
        query.with(|q| CatalogParams {
            q: q.get("q").unwrap_or_default(),
            kind: q.get("kind").and_then(|kind| ImageKind::parse(&kind).ok()),
            format: q
                .get("format")
                .and_then(|format| DiskFormat::parse(&format).ok()),
            mine: q.get("mine").as_deref() == Some("true"),
            sort: q
                .get("sort")
                .and_then(|sort| CatalogSort::parse(&sort))
                .unwrap_or_default(),
            page: q
                .get("page")
                .and_then(|page| page.parse().ok())
                .unwrap_or(1)
                .max(1),
        })
    });
    let images = Resource::new(move || params.get(), list_images);
    let title = move || {
        if params.get().mine {
            "My images"
        } else {
            "Catalog"
        }
    };

    view! {
        <Title text=move || format!("{} · Depot", title())/>
        <h1>{title}</h1>
        <Form method="GET" action="" attr:class="search">
            <label for="q">"Search"</label>
            <input id="q" name="q" type="search" prop:value=move || params.get().q/>
            <label for="kind">"Kind"</label>
            <select id="kind" name="kind">
                <option value="" selected=move || params.get().kind.is_none()>"All kinds"</option>
                {ImageKind::ALL
                    .into_iter()
                    .map(|kind| {
                        view! {
                            <option value=kind.as_str() selected=move || params.get().kind == Some(kind)>
                                {kind.as_str()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <label for="format">"Format"</label>
            <select id="format" name="format">
                <option value="" selected=move || params.get().format.is_none()>"All formats"</option>
                {DiskFormat::ALL
                    .into_iter()
                    .map(|format| {
                        view! {
                            <option value=format.as_str() selected=move || params.get().format == Some(format)>
                                {format.as_str()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <label for="sort">"Order"</label>
            <select id="sort" name="sort">
                {CatalogSort::ALL
                    .into_iter()
                    .map(|sort| {
                        view! {
                            <option value=sort.as_str() selected=move || params.get().sort == sort>
                                {sort.as_str()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <Show when=move || params.get().mine>
                <input type="hidden" name="mine" value="true"/>
            </Show>
            <button type="submit">"Search"</button>
        </Form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                images
                    .get()
                    .map(|result| match result {
                        Ok(page) => view! { <ImageTable page params=params.get()/> }.into_any(),
                        Err(error) => {
                            view! { <ErrorAlert error/> }.into_any()
                        }
                    })
            }}
        </Transition>
    }
}

#[component]
fn ImageTable(page: ImagePage, params: CatalogParams) -> impl IntoView {
    if page.items.is_empty() {
        return view! { <p class="empty">"No images match."</p> }.into_any();
    }
    let current = params.page.max(1);
    let pages = page.total.div_ceil(page.limit).max(1);
    let previous = (current > 1).then(|| catalog_href(&params, current - 1));
    let next = (current < pages).then(|| catalog_href(&params, current + 1));
    let rows = page
        .items
        .into_iter()
        .map(|image| {
            let size = image.size.map(|size| human_size(size as f64)).unwrap_or_default();
            let format = image.format.map(|f| f.as_str()).unwrap_or("—");
            view! {
                <tr>
                    <td><A href=format!("/image/{}", image.id)>{image.name}</A></td>
                    <td>{image.kind.as_str()}</td>
                    <td class="col-format">{format}</td>
                    <td class="num">{size}</td>
                    <td>{image.owner.unwrap_or_else(|| "public".into())}</td>
                    <td class="col-created">{image.created_at.format("%Y-%m-%d %H:%M").to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing images">
            <caption>
                {match page.total {
                    1 => "1 image".to_owned(),
                    total => format!("{total} images"),
                }}
            </caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Kind"</th>
                    <th scope="col" class="col-format">"Format"</th>
                    <th scope="col">"Size"</th>
                    <th scope="col">"Owner"</th>
                    <th scope="col" class="col-created">"Created"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            {previous.map(|href| view! { <A href=href attr:rel="prev">"Previous"</A> })}
            <span>{format!("Page {current} of {pages}")}</span>
            {next.map(|href| view! { <A href=href attr:rel="next">"Next"</A> })}
        </nav>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_search_and_leave_defaults_out() {
        let params = CatalogParams {
            q: "a b&c".into(),
            mine: true,
            ..Default::default()
        };
        assert_eq!(catalog_href(&params, 2), "/?q=a+b%26c&mine=true&page=2");
        assert_eq!(catalog_href(&CatalogParams::default(), 1), "/");
    }
}
