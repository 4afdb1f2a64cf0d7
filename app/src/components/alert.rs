//! How a page says that something was refused or went wrong.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;

use crate::error::CoreError;

/// An error, announced by screen readers as it appears.
#[component]
pub fn ErrorAlert(error: CoreError) -> impl IntoView {
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}

/// What a page shows a visitor who is not signed in: a link to sign in,
/// and `purpose` ("to see your tokens.").
#[component]
pub fn SignInPrompt(purpose: &'static str) -> impl IntoView {
    view! {
        <p class="empty">
            <A href="/login">"Sign in"</A>
            " "
            {purpose}
        </p>
    }
}

/// The error of a form's last submission, if it was refused.
pub fn refusal<S>(action: ServerAction<S>) -> Option<CoreError>
where
    S: ServerFn<Error = CoreError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    action.value().get().and_then(Result::err)
}
