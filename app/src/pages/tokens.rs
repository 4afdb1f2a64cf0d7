//! `/tokens`: the signed-in user's access tokens for scripts. A new token's
//! secret is shown once, with a copy button; each row can be revoked, and
//! revoking works without WASM too. Tokens made here are revoked when the
//! session signs out. Below them, the user's Coopr API keys, likewise.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{
    list_api_keys, list_tokens, CreateApiKey, CreateToken, RevokeApiKey, RevokeToken,
};
use crate::components::{refusal, script_running, ErrorAlert, ShownOnce, SignInPrompt};
use crate::dates;
use crate::error::CoreError;
use crate::model::{ApiKeyInfo, ApiKeys, TokenInfo};

#[component]
pub fn TokensPage() -> impl IntoView {
    // Secrets are shown once, by the page script: the Create buttons wait for it.
    let scripted = script_running();
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
        create.value().get().and_then(Result::ok).map(|token| {
            let intro = format!(
                "Your new token (number {}). Copy it now: it is not shown again.",
                token.id
            );
            view! { <ShownOnce intro label="New token" secret=token.token/> }
        })
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
            <button type="submit" disabled=move || !scripted.get()>"Create a token"</button>
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
                            view! { <SignInPrompt purpose="to see your tokens."/> }.into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
        <ApiKeysSection/>
    }
}

#[component]
fn TokenTable(tokens: Vec<TokenInfo>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <p class="empty">"No tokens yet."</p> }.into_any();
    }
    let time = dates::second;
    let rows = tokens
        .into_iter()
        .map(|token| {
            let last_used = token.last_used_at.map(time).unwrap_or_else(|| "never".into());
            view! {
                <tr id=format!("token-{}", token.id)>
                    <td data-label="Token" class="num">{token.id}</td>
                    <td data-label="Created">{time(token.created_at)}</td>
                    <td data-label="Expires">{time(token.expires_at)}</td>
                    <td data-label="Last used">{last_used}</td>
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

/// The user's Coopr API keys: one per tenant they work in, made here
/// (shown once), listed, revoked.
#[component]
fn ApiKeysSection() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    let refused = move || {
        refusal(revoke)
            .or_else(|| refusal(create))
            .map(|error| view! { <ErrorAlert error/> })
    };
    let issued = move || {
        create.value().get().and_then(Result::ok).map(|key| {
            let intro = format!(
                "Your new API key for tenant {}. Copy it now: it is not shown again.",
                key.tenant
            );
            view! { <ShownOnce intro label="New API key" secret=key.key/> }
        })
    };
    view! {
        <h2>"Coopr API keys"</h2>
        <p>
            "A key lets a Coopr client act as you inside one tenant: "
            <code>"Coopr-UserID"</code>", "<code>"Coopr-TenantID"</code>" and "
            <code>"Coopr-ApiKey"</code>" headers on "<code>"/v2"</code>"."
        </p>
        {issued}
        {refused}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                keys.get()
                    .map(|result| match result {
                        Ok(keys) => view! { <ApiKeyList keys create revoke/> }.into_any(),
                        Err(CoreError::Unauthenticated) => ().into_any(),
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn ApiKeyList(
    keys: ApiKeys,
    create: ServerAction<CreateApiKey>,
    revoke: ServerAction<RevokeApiKey>,
) -> impl IntoView {
    let scripted = script_running();
    let options = keys
        .tenants
        .iter()
        .map(|tenant| view! { <option value=tenant.clone()></option> })
        .collect_view();
    let listing = if keys.keys.is_empty() {
        view! { <p class="empty">"No API keys yet."</p> }.into_any()
    } else {
        let rows = keys
            .keys
            .into_iter()
            .map(|key| view! { <ApiKeyRow key revoke/> })
            .collect_view();
        view! {
            <table class="listing apikeys">
                <caption>"Your API keys"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Id"</th>
                        <th scope="col">"Tenant"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <ActionForm action=create attr:class="form narrow">
            <label for="apikey-tenant">"Tenant"</label>
            <input id="apikey-tenant" name="tenant" type="text" list="apikey-tenants" required autocomplete="off"/>
            <datalist id="apikey-tenants">{options}</datalist>
            <button type="submit" disabled=move || !scripted.get()>"Create an API key"</button>
        </ActionForm>
        {listing}
    }
}

#[component]
fn ApiKeyRow(key: ApiKeyInfo, revoke: ServerAction<RevokeApiKey>) -> impl IntoView {
    view! {
        <tr>
            <td data-label="Key" class="num">{key.id}</td>
            <td data-label="Tenant">{key.tenant.clone()}</td>
            <td data-label="Created">{key.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</td>
            <td>
                <ActionForm action=revoke>
                    <input type="hidden" name="id" value=key.id.to_string()/>
                    <button type="submit" class="secondary" aria-label=format!("Revoke API key {}", key.id)>
                        "Revoke"
                    </button>
                </ActionForm>
            </td>
        </tr>
    }
}
