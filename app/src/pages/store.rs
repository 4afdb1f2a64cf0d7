//! `/personal-store`: the signed-in user's personal store (the folder WebDAV serves
//! at `/store/`) as a file browser: folders, sizes, dates; add files, make
//! folders, delete; and the Sync buttons that turn its OVAs and ISOs into
//! images, with each request's status. With WASM the requests are asked for
//! again every second while one runs; without, the Refresh link does.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::{list_store, recent_syncs, DeleteStoreEntry, MakeStoreFolder, SyncStore};
use crate::components::{human_size, refusal, ErrorAlert, SignInPrompt};
use crate::error::CoreError;
use crate::model::{StoreEntry, StoreListing, SyncInfo};

/// How often the sync requests are asked for again while one runs.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The page's URL for a folder of the store.
fn folder_href(path: &str) -> String {
    if path.is_empty() {
        "/personal-store".to_owned()
    } else {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("path", path);
        format!("/personal-store?{}", query.finish())
    }
}

/// `path` with one more component.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}/{name}")
    }
}

#[component]
pub fn StorePage() -> impl IntoView {
    let query = use_query_map();
    let path = Memo::new(move |_| query.with(|q| q.get("path").unwrap_or_default()));
    let make_folder = ServerAction::<MakeStoreFolder>::new();
    let delete = ServerAction::<DeleteStoreEntry>::new();
    let sync = ServerAction::<SyncStore>::new();
    let listing = Resource::new(
        move || {
            (
                path.get(),
                make_folder.version().get(),
                delete.version().get(),
            )
        },
        |(path, ..)| list_store(path),
    );
    let polls = RwSignal::new(0u32);
    let syncs = Resource::new(
        move || (sync.version().get(), polls.get()),
        |_| recent_syncs(),
    );
    // Effects run only in the browser, so the server renders once and stops.
    Effect::new(move |_| {
        let running = matches!(
            syncs.get(),
            Some(Ok(list)) if list.iter().any(SyncInfo::is_running)
        );
        if running {
            set_timeout(
                move || {
                    polls.try_update(|count| *count += 1);
                },
                POLL_EVERY,
            );
        }
    });
    let refused = move || {
        refusal(make_folder)
            .or_else(|| refusal(delete))
            .or_else(|| refusal(sync))
            .map(|error| view! { <ErrorAlert error/> })
    };
    view! {
        <Title text="Personal store · Depot"/>
        <h1>"Personal store"</h1>
        <p>
            "Your own folder, also reachable over WebDAV at "<code>"/store/"</code>
            " (rclone, cadaver, a file manager). A sync turns its "<code>".ova"</code>", "
            <code>".ovf"</code>" and "<code>".iso"</code>" files into your images."
        </p>
        <div class="sync-buttons">
            <ActionForm action=sync>
                <input type="hidden" name="kind" value="VM"/>
                <button type="submit">"Sync VM images"</button>
            </ActionForm>
            <ActionForm action=sync>
                <input type="hidden" name="kind" value="ISO"/>
                <button type="submit">"Sync ISOs"</button>
            </ActionForm>
        </div>
        {refused}
        <Transition fallback=|| ()>
            {move || syncs.get().map(|result| match result {
                Ok(syncs) => view! { <SyncTable syncs/> }.into_any(),
                Err(_) => ().into_any(),
            })}
        </Transition>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                listing
                    .get()
                    .map(|result| match result {
                        Ok(listing) => view! { <Folder listing make_folder delete/> }.into_any(),
                        Err(CoreError::Unauthenticated) => {
                            view! { <SignInPrompt purpose="to see your store."/> }.into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// The latest sync requests and what each did.
#[component]
fn SyncTable(syncs: Vec<SyncInfo>) -> impl IntoView {
    if syncs.is_empty() {
        return view! { <p class="empty">"No syncs yet."</p> }.into_any();
    }
    let rows = syncs
        .into_iter()
        .map(|sync| {
            let status_class = match sync.status.as_str() {
                "PROCESSED" => "state state-done",
                "ERROR" => "state state-failed",
                _ => "state state-running",
            };
            let problems = sync
                .errors
                .iter()
                .map(|error| view! { <li class="error">{error.clone()}</li> })
                .chain(
                    sync.warnings
                        .iter()
                        .map(|warning| view! { <li class="warning">{warning.clone()}</li> }),
                )
                .collect_view();
            view! {
                <tr id=format!("sync-{}", sync.id)>
                    <td data-label="Sync" class="num">{sync.id}</td>
                    <td data-label="Of">{sync.kind.clone()}</td>
                    <td data-label="Status"><span class=status_class>{sync.status.clone()}</span></td>
                    <td data-label="Added" class="num">{sync.added}</td>
                    <td data-label="Updated" class="num">{sync.updated}</td>
                    <td data-label="Removed" class="num">{sync.deleted}</td>
                    <td data-label="Problems"><ul class="problems">{problems}</ul></td>
                    <td data-label="Last change">{sync.updated_at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing syncs">
            <caption>"Syncs"</caption>
            <thead>
                <tr>
                    <th scope="col">"Id"</th>
                    <th scope="col">"Of"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Added"</th>
                    <th scope="col">"Updated"</th>
                    <th scope="col">"Removed"</th>
                    <th scope="col">"Errors and warnings"</th>
                    <th scope="col">"Last change"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <p><A href="/personal-store">"Refresh"</A></p>
    }
    .into_any()
}

/// Where the folder is (each step a link), its entries, and the forms that
/// add to it.
#[component]
fn Folder(
    listing: StoreListing,
    make_folder: ServerAction<MakeStoreFolder>,
    delete: ServerAction<DeleteStoreEntry>,
) -> impl IntoView {
    let path = listing.path.clone();
    let mut crumbs = vec![view! { <A href="/personal-store">"Store"</A> }.into_any()];
    let mut walked = String::new();
    let parts: Vec<String> = path
        .split('/')
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect();
    for part in parts {
        walked = child(&walked, &part);
        crumbs.push(view! { <span aria-hidden="true">" / "</span> }.into_any());
        crumbs.push(view! { <A href=folder_href(&walked)>{part}</A> }.into_any());
    }
    let entries = if listing.entries.is_empty() {
        view! { <p class="empty">"This folder is empty."</p> }.into_any()
    } else {
        let rows = listing
            .entries
            .into_iter()
            .map(|entry| view! { <EntryRow entry folder=path.clone() delete/> })
            .collect_view();
        view! {
            <table class="listing files">
                <caption>{if path.is_empty() { "Your store".to_owned() } else { path.clone() }}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Size"</th>
                        <th scope="col">"Modified"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <nav class="crumbs" aria-label="Folder">{crumbs}</nav>
        {entries}
        <div class="store-forms">
            <form class="form" method="post" action="/api/store/upload" enctype="multipart/form-data">
                <input type="hidden" name="folder" value=path.clone()/>
                <label for="store-files">"Files to add here"</label>
                <input id="store-files" class="dropzone" name="file" type="file" multiple required/>
                <button type="submit">"Add to store"</button>
            </form>
            <ActionForm action=make_folder attr:class="form">
                <input type="hidden" name="path" value=path.clone()/>
                <label for="new-folder">"New folder"</label>
                <input id="new-folder" name="name" type="text" required maxlength="255"/>
                <button type="submit">"Create folder"</button>
            </ActionForm>
        </div>
    }
}

#[component]
fn EntryRow(
    entry: StoreEntry,
    folder: String,
    delete: ServerAction<DeleteStoreEntry>,
) -> impl IntoView {
    let path = child(&folder, &entry.name);
    let name = if entry.folder {
        view! { <A href=folder_href(&path)>{format!("{}/", entry.name)}</A> }.into_any()
    } else {
        view! { <span>{entry.name.clone()}</span> }.into_any()
    };
    let size = if entry.folder {
        "—".to_owned()
    } else {
        human_size(entry.size)
    };
    let modified = entry
        .modified
        .map(|at| at.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    view! {
        <tr>
            <td>{name}</td>
            <td data-label="Size" class="num">{size}</td>
            <td data-label="Modified">{modified}</td>
            <td>
                <ActionForm action=delete>
                    <input type="hidden" name="path" value=path/>
                    <button type="submit" class="secondary" aria-label=format!("Delete {}", entry.name)>
                        "Delete"
                    </button>
                </ActionForm>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_links_carry_the_path_encoded() {
        assert_eq!(folder_href(""), "/personal-store");
        assert_eq!(
            folder_href("isos/a b&c"),
            "/personal-store?path=isos%2Fa+b%26c"
        );
        assert_eq!(child("", "x"), "x");
        assert_eq!(child("a", "x"), "a/x");
    }
}
