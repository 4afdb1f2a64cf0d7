//! `/upload`: several files at once, each with its own progress bar, speed and
//! Cancel button; large files go resumably (Pause, Resume, and resumption
//! after a reload) with tus-js-client, which the page loads. Without WASM
//! the same form posts itself as multipart.

use leptos::ev::{DragEvent, SubmitEvent};
use leptos::html;
use leptos::prelude::*;
use leptos_meta::{Script, Title};

use crate::components::{start_upload, UploadList, UploadTask};

#[component]
pub fn UploadPage() -> impl IntoView {
    let (tasks, set_tasks) = signal(Vec::<UploadTask>::new());
    let (error, set_error) = signal(None::<String>);
    let files_input = NodeRef::<html::Input>::new();
    let label_input = NodeRef::<html::Input>::new();
    let public_input = NodeRef::<html::Input>::new();

    // Each file of a list in its own request, with the form's label and flag.
    let send = move |files: web_sys::FileList| {
        set_error.set(None);
        let (Some(label_input), Some(public_input)) = (label_input.get(), public_input.get())
        else {
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
    };
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let Some(files_input) = files_input.get() else {
            return;
        };
        if let Some(files) = files_input.files() {
            send(files);
        }
        files_input.set_value("");
    };
    // Files dropped anywhere on the zone are sent at once, as many as there are.
    let dragging = RwSignal::new(false);
    let on_drop = move |event: DragEvent| {
        event.prevent_default();
        dragging.set(false);
        if let Some(files) = event.data_transfer().and_then(|data| data.files()) {
            send(files);
        }
    };
    let on_dragover = move |event: DragEvent| {
        event.prevent_default();
        dragging.set(true);
    };

    view! {
        <Title text="Upload · Depot"/>
        <Script src="/vendor/tus-js-client/tus.min.js"/>
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
            <div
                class="dropzone"
                class:dragging=move || dragging.get()
                on:dragover=on_dragover
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop
            >
                <label for="files">"Files: OVA, OVF, ISO, raw, qcow2 or VMDK (choose, or drop them here)"</label>
                <input id="files" name="file" type="file" multiple required node_ref=files_input/>
            </div>
            <button type="submit">"Upload"</button>
        </form>
        {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        <UploadList tasks/>
    }
}
