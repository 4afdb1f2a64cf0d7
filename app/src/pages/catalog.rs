//! `/`: the catalog, with search, filters, order, page size and page in the
//! URL, so that every view can be bookmarked and works without WASM; once
//! hydrated, the form and the links move through it without a full reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

use crate::api::{list_images, CatalogParams, SortColumn, Visibility, PAGE_SIZES};
use crate::components::{human_size, ErrorAlert};
use crate::dates;
use crate::model::{DiskFormat, ImageKind, ImagePage};
use crate::query::Direction;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let query = use_query_map();
    let params = Memo::new(move |_| query.with(|q| CatalogParams::from_url(|key| q.get(key))));
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
        <CatalogFilters params/>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                images
                    .get()
                    .map(|result| match result {
                        Ok(page) => view! { <ImageTable page params=params.get()/> }.into_any(),
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// The search box and every filter, as one GET form: submitting it is
/// following a link to the catalog with those parameters, from page one.
#[component]
fn CatalogFilters(params: Memo<CatalogParams>) -> impl IntoView {
    let date = move |pick: fn(&CatalogParams) -> Option<chrono::NaiveDate>| {
        move || {
            pick(&params.get())
                .map(|day| day.to_string())
                .unwrap_or_default()
        }
    };
    view! {
        <Form method="GET" action="" attr:class="search" attr:aria-label="Search and filters">
            <div class="field wide">
                <label for="q">"Search"</label>
                <input id="q" name="q" type="search" value=move || params.get().q prop:value=move || params.get().q/>
            </div>
            <div class="field">
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
            </div>
            <div class="field">
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
            </div>
            <div class="field">
                <label for="visibility">"Visibility"</label>
                <select id="visibility" name="visibility">
                    <option value="" selected=move || params.get().visibility.is_none()>"Any"</option>
                    {Visibility::ALL
                        .into_iter()
                        .map(|visibility| {
                            view! {
                                <option value=visibility.as_str() selected=move || params.get().visibility == Some(visibility)>
                                    {visibility.as_str()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="owner">"Owner"</label>
                <input id="owner" name="owner" type="text" autocomplete="off" value=move || params.get().owner prop:value=move || params.get().owner/>
            </div>
            <div class="field">
                <label for="os">"Guest OS"</label>
                <input id="os" name="os" type="text" value=move || params.get().os prop:value=move || params.get().os/>
            </div>
            <div class="field">
                <label for="from">"Created from"</label>
                <input id="from" name="from" type="date" value=date(|p| p.created_from) prop:value=date(|p| p.created_from)/>
            </div>
            <div class="field">
                <label for="to">"Created to"</label>
                <input id="to" name="to" type="date" value=date(|p| p.created_to) prop:value=date(|p| p.created_to)/>
            </div>
            <div class="field">
                <label for="per_page">"Per page"</label>
                <select id="per_page" name="per_page">
                    {PAGE_SIZES
                        .into_iter()
                        .map(|size| {
                            view! {
                                <option value=size.to_string() selected=move || params.get().per_page == size>
                                    {size}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </div>
            // The order and "mine" are kept across a new search.
            <input type="hidden" name="sort" value=move || params.get().sort.column.as_str()/>
            <input type="hidden" name="dir" value=move || params.get().sort.dir_str()/>
            <Show when=move || params.get().mine>
                <input type="hidden" name="mine" value="true"/>
            </Show>
            <div class="field actions">
                <button type="submit">"Search"</button>
                <A href=move || (if params.get().mine { "/?mine=true" } else { "/" }).to_owned()>"Clear"</A>
            </div>
        </Form>
    }
}

// The headings and the pager use plain links, which the router still
// follows without a reload: `A` would mark every link to `/` as the current
// page (it compares paths, not queries).

#[component]
fn ImageTable(page: ImagePage, params: CatalogParams) -> impl IntoView {
    if page.items.is_empty() {
        return view! { <p class="empty">"No images match."</p> }.into_any();
    }
    let headings = SortColumn::ALL
        .into_iter()
        .map(|column| {
            let sorted = (params.sort.column == column).then_some(params.sort.direction);
            let aria_sort = match sorted {
                Some(Direction::Asc) => "ascending",
                Some(Direction::Desc) => "descending",
                None => "none",
            };
            let arrow = match sorted {
                Some(Direction::Asc) => "▲",
                Some(Direction::Desc) => "▼",
                None => "",
            };
            let href = params.sorted(params.sort.toggled(column)).href(1);
            view! {
                <th scope="col" class=format!("col-{}", column.as_str()) aria-sort=aria_sort>
                    <a href=href>{column.title()}</a>
                    <span class="arrow" aria-hidden="true">{arrow}</span>
                </th>
            }
        })
        .collect_view();
    let rows = page
        .items
        .into_iter()
        .map(|image| {
            let size = image.size.map(human_size).unwrap_or_default();
            let format = image.format.map(|f| f.as_str()).unwrap_or("—");
            view! {
                <tr>
                    <td class="col-name"><A href=format!("/image/{}", image.id)>{image.name}</A></td>
                    <td class="col-kind" data-label="Kind">{image.kind.as_str()}</td>
                    <td class="col-format" data-label="Format">{format}</td>
                    <td class="num col-size" data-label="Size">{size}</td>
                    <td class="col-owner" data-label="Owner">{image.owner.unwrap_or_else(|| "public".into())}</td>
                    <td class="col-created" data-label="Created">{dates::minute(image.created_at)}</td>
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
                <tr>{headings}</tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <Pager params total=page.total per_page=page.limit/>
    }
    .into_any()
}

/// Numbered pages: the first, the last, and two either side of the current
/// one, with gaps between; previous and next.
#[component]
fn Pager(params: CatalogParams, total: u64, per_page: u64) -> impl IntoView {
    let current = params.page.max(1);
    let pages = total.div_ceil(per_page.max(1)).max(1);
    if pages == 1 {
        return ().into_any();
    }
    let link = |page: u64, text: String, rel: Option<&'static str>, label: String| {
        view! { <a href=params.href(page) rel=rel aria-label=label>{text}</a> }
    };
    let mut items = Vec::new();
    if current > 1 {
        items.push(
            link(
                current - 1,
                "Previous".into(),
                Some("prev"),
                "Previous page".into(),
            )
            .into_any(),
        );
    }
    let mut last_shown = 0;
    for page in page_numbers(current, pages) {
        if page > last_shown + 1 {
            items.push(view! { <span class="gap" aria-hidden="true">"…"</span> }.into_any());
        }
        last_shown = page;
        items.push(if page == current {
            view! { <span aria-current="page">{page}</span> }.into_any()
        } else {
            link(page, page.to_string(), None, format!("Page {page}")).into_any()
        });
    }
    if current < pages {
        items.push(link(current + 1, "Next".into(), Some("next"), "Next page".into()).into_any());
    }
    view! {
        <nav class="pager" aria-label="Pages">
            {items}
            <span class="of">{format!("Page {current} of {pages}")}</span>
        </nav>
    }
    .into_any()
}

/// The page numbers the pager shows, in order.
fn page_numbers(current: u64, pages: u64) -> Vec<u64> {
    let mut numbers: Vec<u64> = [1, pages]
        .into_iter()
        .chain(current.saturating_sub(2).max(1)..=(current + 2).min(pages))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pager_shows_both_ends_and_the_neighbourhood() {
        assert_eq!(page_numbers(1, 1), vec![1]);
        assert_eq!(page_numbers(1, 10), vec![1, 2, 3, 10]);
        assert_eq!(page_numbers(6, 10), vec![1, 4, 5, 6, 7, 8, 10]);
        assert_eq!(page_numbers(10, 10), vec![1, 8, 9, 10]);
        assert_eq!(page_numbers(3, 4), vec![1, 2, 3, 4]);
    }
}
