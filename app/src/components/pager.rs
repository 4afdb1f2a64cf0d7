//! Previous and next pages of an admin's or a user's listing, in the URL
//! (`?page=N`) so that each page can be bookmarked and works without WASM.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

/// The page the URL asks for (from 1).
pub fn page_from_url() -> Memo<u64> {
    let query = use_query_map();
    Memo::new(move |_| {
        query.with(|q| {
            q.get("page")
                .and_then(|page| page.parse::<u64>().ok())
                .unwrap_or(1)
                .max(1)
        })
    })
}

/// "Previous", "Page 2 of 5", "Next", as links to `base?page=N`; nothing
/// for a listing that fits one page.
#[component]
pub fn ListPager(base: &'static str, page: u64, pages: u64) -> impl IntoView {
    if pages <= 1 {
        return ().into_any();
    }
    let href = move |page: u64| format!("{base}?page={page}");
    view! {
        <nav class="pager" aria-label="Pages">
            {(page > 1).then(|| view! { <A href=href(page - 1) attr:rel="prev">"Previous"</A> })}
            <span class="of">{format!("Page {page} of {pages}")}</span>
            {(page < pages).then(|| view! { <A href=href(page + 1) attr:rel="next">"Next"</A> })}
        </nav>
    }
    .into_any()
}
