//! `/upload`: several files at once, each with its own progress bar, speed and
//! Cancel button. Without WASM the same form posts itself as multipart.

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{start_upload, UploadList, UploadTask};

#[component]
pub fn UploadPage() -> impl IntoView {
    let (tasks, set_tasks) = signal(Vec::<UploadTask>::new());
    let (error, set_error) = signal(None::<String>);
    let files_input = NodeRef::<html::Input>::new();
    let label_input = NodeRef::<html::Input>::new();
    let public_input = NodeRef::<html::Input>::new();

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        set_error.set(None);
        let (Some(files_input), Some(label_input), Some(public_input)) =
            (files_input.get(), label_input.get(), public_input.get())
        else {
            return;
        };
        let Some(files) = files_input.files() else {
            return;
        };
        let label = label_input.value();
        let public = public_input.checked();
        for index in 0..files.length() {
            let Some(file) = files.get(index) else {
                continue;
            };
            match start_upload(file, &label, public) {
                Ok(task) => set_tasks.update(|tasks| tasks.push(task)),
                Err(message) => set_error.set(Some(message)),
            }
        }
        files_input.set_value("");
    };

    view! {
        <Title text="Upload · Depot"/>
        <h1>"Upload images"</h1>
        <form
            class="form upload-form"
            method="post"
            action="/api/upload"
            enctype="multipart/form-data"
            on:submit=on_submit
        >
            <label for="label">"Label"</label>
            <input id="label" name="label" type="text" node_ref=label_input/>
            <label class="check">
                <input id="public" name="public" type="checkbox" value="true" node_ref=public_input/>
                " Public (administrators only)"
            </label>
            <label for="files">"Files: OVA, OVF, ISO, raw, qcow2 or VMDK (choose or drop here)"</label>
            <input id="files" class="dropzone" name="file" type="file" multiple required node_ref=files_input/>
            <button type="submit">"Upload"</button>
        </form>
        {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        <UploadList tasks/>
    }
}
