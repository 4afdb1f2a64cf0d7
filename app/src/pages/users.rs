//! `/admin/users`: every account, for administrators. Create one, make it
//! an admin or a plain user, disable or enable it, reset its password (the
//! new one shown once). Every button is a form, so all of it works before
//! the WASM loads.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{list_users, ChangeUser, CreateUser, ResetPassword};
use crate::components::{
    page_from_url, refusal, script_running, ErrorAlert, ListPager, ShownOnce, SignInPrompt,
};
use crate::dates;
use crate::error::CoreError;
use crate::model::{Role, UserInfo, UserPage};

#[component]
pub fn UsersPage() -> impl IntoView {
    let page = page_from_url();
    let create = ServerAction::<CreateUser>::new();
    let change = ServerAction::<ChangeUser>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(
        move || {
            (
                page.get(),
                create.version().get(),
                change.version().get(),
                reset.version().get(),
            )
        },
        |(page, ..)| list_users(page),
    );
    let refused = move || {
        refusal(create)
            .or_else(|| refusal(change))
            .or_else(|| refusal(reset))
            .map(|error| view! { <ErrorAlert error/> })
    };
    let created = move || {
        create.value().get().and_then(Result::ok).map(|user| {
            view! { <p class="state done" role="status">{format!("Created {}.", user.username)}</p> }
        })
    };
    let new_password = move || {
        reset.value().get().and_then(Result::ok).map(|reset| {
            let intro = format!(
                "The new password of {}. Give it to its owner now: it is not shown again. \
                     Their sessions and tokens have ended.",
                reset.username
            );
            view! { <ShownOnce intro label="New password" secret=reset.password/> }
        })
    };
    view! {
        <Title text="Users · Depot"/>
        <h1>"Users"</h1>
        <h2>"New account"</h2>
        <ActionForm action=create attr:class="form narrow">
            <label for="new-username">"Username"</label>
            <input id="new-username" name="username" type="text" autocomplete="off" required maxlength="64"/>
            <label for="new-password">"Password (at least 8 characters)"</label>
            <input id="new-password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"/>
            <label class="check">
                <input type="checkbox" name="admin" value="yes"/>
                "Administrator"
            </label>
            <button type="submit">"Create account"</button>
        </ActionForm>
        {created}
        {new_password}
        {refused}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                users
                    .get()
                    .map(|result| match result {
                        Ok(users) => view! { <UserTable users change reset/> }.into_any(),
                        Err(CoreError::Unauthenticated) => {
                            view! { <SignInPrompt purpose="as an administrator to manage accounts."/> }.into_any()
                        }
                        Err(error) => view! { <ErrorAlert error/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn UserTable(
    users: UserPage,
    change: ServerAction<ChangeUser>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    let (page, pages) = users.position();
    let rows = users
        .items
        .into_iter()
        .map(|user| view! { <UserRow user change reset/> })
        .collect_view();
    view! {
        <table class="listing users">
            <caption>
                {match users.total {
                    1 => "1 account".to_owned(),
                    total => format!("{total} accounts"),
                }}
            </caption>
            <thead>
                <tr>
                    <th scope="col">"Username"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <ListPager base="/admin/users" page pages/>
    }
}

#[component]
fn UserRow(
    user: UserInfo,
    change: ServerAction<ChangeUser>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    let name = user.username.clone();
    let (role_action, role_text) = match user.role {
        Role::Admin => ("make-user", "Make user"),
        Role::User => ("make-admin", "Make admin"),
    };
    let (status_action, status_text) = if user.disabled {
        ("enable", "Enable")
    } else {
        ("disable", "Disable")
    };
    let id = user.id;
    let button = |action: &'static str, text: &'static str| {
        let id = id.to_string();
        let label = format!("{text} {name}");
        view! {
            <ActionForm action=change>
                <input type="hidden" name="id" value=id/>
                <input type="hidden" name="action" value=action/>
                <button type="submit" class="secondary" aria-label=label>{text}</button>
            </ActionForm>
        }
    };
    let reset_label = format!("Reset the password of {name}");
    // The new password is shown by the page script: a plain form post would
    // set a password nobody sees, so the button waits for the script.
    let scripted = script_running();
    let role_button = button(role_action, role_text);
    let status_button = button(status_action, status_text);
    view! {
        <tr id=format!("user-{id}")>
            <td>{user.username}</td>
            <td data-label="Role">{user.role.as_str()}</td>
            <td data-label="Status" class=if user.disabled { "state-failed" } else { "state-done" }>
                {if user.disabled { "disabled" } else { "active" }}
            </td>
            <td data-label="Created">{dates::day(user.created_at)}</td>
            <td class="actions">
                {role_button}
                {status_button}
                <ActionForm action=reset>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <button type="submit" class="secondary" aria-label=reset_label disabled=move || !scripted.get()>
                        "Reset password"
                    </button>
                </ActionForm>
            </td>
        </tr>
    }
}
