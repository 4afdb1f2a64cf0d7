//! A file sent in one `multipart/form-data` request, the same body the
//! plain HTML form would send.

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{FormData, ProgressEvent, XmlHttpRequest};

use super::browser::{forget, js_error, new_task, now_ms, track, Running};
use super::{outcome, UploadState, UploadTask};

/// Starts sending one file as `multipart/form-data`, the same body the
/// plain HTML form would send.
pub(super) fn start(file: web_sys::File, label: &str, public: bool) -> Result<UploadTask, String> {
    let xhr = XmlHttpRequest::new().map_err(js_error)?;
    xhr.open("POST", "/api/upload").map_err(js_error)?;
    xhr.set_request_header("Accept", "application/json")
        .map_err(js_error)?;
    let form = FormData::new().map_err(js_error)?;
    form.append_with_str("label", label).map_err(js_error)?;
    if public {
        form.append_with_str("public", "true").map_err(js_error)?;
    }
    form.append_with_blob_and_filename("file", &file, &file.name())
        .map_err(js_error)?;

    let task = new_task(&file, false);
    let started = now_ms();

    let on_progress = {
        let task = task.clone();
        Closure::<dyn FnMut(ProgressEvent)>::new(move |event: ProgressEvent| {
            task.sent.set(event.loaded());
            if event.length_computable() {
                task.body_total.set(event.total());
            }
            task.elapsed_ms.set(now_ms() - started);
        })
    };
    let on_load = {
        let (task, xhr) = (task.clone(), xhr.clone());
        Closure::<dyn FnMut()>::new(move || {
            let body = xhr.response_text().ok().flatten().unwrap_or_default();
            task.state.set(outcome(xhr.status().unwrap_or(0), &body));
            forget(task.id);
        })
    };
    let on_error = {
        let task = task.clone();
        Closure::<dyn FnMut()>::new(move || {
            task.state.set(UploadState::Failed(
                "the connection to the server failed".into(),
            ));
            forget(task.id);
        })
    };
    let on_abort = {
        let task = task.clone();
        Closure::<dyn FnMut()>::new(move || {
            task.state.set(UploadState::Cancelled);
            forget(task.id);
        })
    };
    xhr.upload()
        .map_err(js_error)?
        .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    xhr.set_onload(Some(on_load.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    xhr.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
    // The handlers live as long as the request; the page keeps few uploads.
    on_progress.forget();
    on_load.forget();
    on_error.forget();
    on_abort.forget();

    xhr.send_with_opt_form_data(Some(&form)).map_err(js_error)?;
    track(task.id, Running::Multipart(xhr));
    Ok(task)
}
