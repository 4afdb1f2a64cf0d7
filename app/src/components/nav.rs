//! The top bar: where to go, and who is signed in.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

use crate::api::{current_user, Logout};
use crate::model::Role;

#[component]
pub fn NavBar() -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    // Asked again after every navigation, so that signing in or out shows at once.
    let location = use_location();
    let user = Resource::new(
        move || (logout.version().get(), location.pathname.get()),
        |_| current_user(),
    );
    view! {
        <header class="topbar">
            <nav aria-label="Main">
                <A href="/" attr:class="brand">"Depot"</A>
                <A href="/">"Catalog"</A>
                <A href="/?mine=true">"My images"</A>
                <A href="/upload">"Upload"</A>
                <A href="/personal-store">"Store"</A>
                <A href="/environments">"Environments"</A>
                <A href="/deployments">"Deployments"</A>
                <A href="/tokens">"Tokens"</A>
                // A page of the server's own, not a route of the app's.
                <a href="/api/docs" rel="external">"API"</a>
                <Transition fallback=|| ()>
                    {move || {
                        let admin = matches!(
                            user.get(),
                            Some(Ok(Some(user))) if user.role == Role::Admin
                        );
                        admin.then(|| view! {
                            <A href="/admin/users">"Users"</A>
                            <A href="/admin/tenants">"Tenants"</A>
                        })
                    }}
                </Transition>
            </nav>
            <Transition fallback=|| ()>
                {move || user.get().map(|user| match user {
                    Ok(Some(user)) => view! {
                        <div class="who">
                            <span class="username">{user.username}</span>
                            <ActionForm action=logout>
                                <button type="submit">"Sign out"</button>
                            </ActionForm>
                        </div>
                    }.into_any(),
                    _ => view! { <A href="/login">"Sign in"</A> }.into_any(),
                })}
            </Transition>
        </header>
    }
}
