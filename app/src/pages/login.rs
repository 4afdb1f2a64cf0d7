//! `/login`: the sign-in form. It posts to the server function directly, so
//! it works before (and without) the WASM bundle.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::Login;
use crate::components::{refusal, ErrorAlert};

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let error = move || refusal(login).map(|error| view! { <ErrorAlert error/> });
    view! {
        <Title text="Sign in · Depot"/>
        <h1>"Sign in"</h1>
        <ActionForm action=login attr:class="form narrow">
            <label for="username">"Username"</label>
            <input id="username" name="username" type="text" autocomplete="username" required/>
            <label for="password">"Password"</label>
            <input
                id="password"
                name="password"
                type="password"
                autocomplete="current-password"
                required
            />
            <button type="submit">"Sign in"</button>
        </ActionForm>
        {error}
    }
}
