//! `/tokens`: the signed-in user's access tokens for scripts. A new token's
//! secret is shown once, with a copy button; each row can be revoked, and
//! revoking works without WASM too. Tokens made here are revoked when the
//! session signs out.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::{list_tokens, CreateToken, RevokeToken};
use crate::components::{refusal, ErrorAlert};
use crate::error::CoreError;
use crate::model::{NewToken, TokenInfo};

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    let refused = move || {
        refusal(revoke)
            .or_else(|| refusal(create))
            .map(|error| view! { <ErrorAlert error/> })
    };
    let issued = move || {
        create
            .value()
            .get()
            .and_then(Result::ok)
            .map(|token| view! { <IssuedToken token/> })
    };
    view! {
        <Title text="Tokens · Depot"/>
        <h1>"Tokens"</h1>
        <p>
            "A token lets a script act as you: "
            <code>"Authorization: Bearer TOKEN"</code>
            ", or the token as a Basic username with an empty password. Each lasts 24 hours; "
            "those made here end when you sign out."
        </p>
        <ActionForm action=create>
            <button type="submit">"Create a token"</button>
        </ActionForm>
        {issued}
        {refused}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                tokens
                    .get()
                    .map(|result| match result {
                        Ok(tokens) => view! { <TokenTable tokens revoke/> }.into_any(),
                        Err(CoreError::Unauthenticated) => {
                            view! {
                                <p class="empty">
                                    <A href="/login">"Sign in"</A>
                                    " to see your tokens."
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// A token just made: its secret, this once, and a button to copy it.
#[component]
fn IssuedToken(token: NewToken) -> impl IntoView {
    let secret = token.token.clone();
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let clipboard = window().navigator().clipboard();
        let _ = clipboard.write_text(&secret);
        copied.set(true);
    };
    view! {
        <div class="new-token" role="status">
            <p>"Your new token (number " {token.id} "). Copy it now: it is not shown again."</p>
            <input type="text" readonly aria-label="New token" value=token.token.clone()/>
            <button type="button" on:click=copy>"Copy"</button>
            <Show when=move || copied.get()>
                <span class="state">"Copied"</span>
            </Show>
        </div>
    }
}

#[component]
fn TokenTable(tokens: Vec<TokenInfo>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <p class="empty">"No tokens yet."</p> }.into_any();
    }
    let time = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let rows = tokens
        .into_iter()
        .map(|token| {
            let last_used = token.last_used_at.map(time).unwrap_or_else(|| "never".into());
            view! {
                <tr id=format!("token-{}", token.id)>
                    <td class="num">{token.id}</td>
                    <td>{time(token.created_at)}</td>
                    <td>{time(token.expires_at)}</td>
                    <td>{last_used}</td>
                    <td>
                        <ActionForm action=revoke>
                            <input type="hidden" name="id" value=token.id.to_string()/>
                            <button type="submit" class="secondary" aria-label=format!("Revoke token {}", token.id)>
                                "Revoke"
                            </button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="listing tokens">
            <caption>"Your tokens"</caption>
            <thead>
                <tr>
                    <th scope="col">"Id"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Expires"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}
