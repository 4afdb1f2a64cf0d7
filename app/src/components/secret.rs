//! A secret the server shows once (a token, an API key, a reset password),
//! with a button that copies it.

use leptos::prelude::*;

/// Whether the page script runs: `false` on the server and until the page
/// hydrates. A button whose answer only the script can show (a secret shown
/// once) waits for it, so that a plain form post never makes a secret that
/// nobody sees.
pub fn script_running() -> Signal<bool> {
    let running = RwSignal::new(false);
    // Effects run only in the browser.
    Effect::new(move |_| running.set(true));
    running.into()
}

/// `intro` says what the secret is; `label` names its read-only field.
#[component]
pub fn ShownOnce(intro: String, label: &'static str, secret: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = {
        let secret = secret.clone();
        move |_| {
            let clipboard = window().navigator().clipboard();
            let _ = clipboard.write_text(&secret);
            copied.set(true);
        }
    };
    view! {
        <div class="new-token" role="status">
            <p>{intro}</p>
            <input type="text" readonly aria-label=label value=secret/>
            <button type="button" on:click=copy>"Copy"</button>
            <Show when=move || copied.get()>
                <span class="state">"Copied"</span>
            </Show>
        </div>
    }
}
