//! A file sent resumably over tus to `/api/uploads` by tus-js-client, the
//! tus project's own browser client (`public/vendor/tus-js-client`, the
//! version `end2end/package.json` pins and the tests run), which the upload
//! page loads. It sends the file in chunks, retries after a network drop,
//! and keeps each upload's URL in the browser's storage under the file's
//! fingerprint (name, type, size, modification time), so that the same
//! file picked again after a reload resumes at the server's offset.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::XmlHttpRequest;

use super::browser::{forget, js_error, new_task, now_ms, track, Running};
use super::{failed, finished, UploadState, UploadTask, CHUNK_BYTES};

/// Waits between the automatic retries after a failed request, in ms.
const RETRY_DELAYS_MS: [u32; 6] = [0, 1_000, 3_000, 5_000, 10_000, 20_000];

#[wasm_bindgen]
extern "C" {
    /// tus-js-client's `tus.Upload`.
    #[wasm_bindgen(js_namespace = tus, js_name = Upload)]
    #[derive(Clone)]
    pub type TusUpload;

    #[wasm_bindgen(constructor, js_namespace = tus, js_class = "Upload", catch)]
    fn new(file: &web_sys::File, options: &Object) -> Result<TusUpload, JsValue>;

    #[wasm_bindgen(method)]
    fn start(this: &TusUpload);

    /// Stops sending; with `terminate`, deletes the upload on the server.
    #[wasm_bindgen(method)]
    fn abort(this: &TusUpload, terminate: bool) -> Promise;

    #[wasm_bindgen(method, js_name = findPreviousUploads)]
    fn find_previous_uploads(this: &TusUpload) -> Promise;

    #[wasm_bindgen(method, js_name = resumeFromPreviousUpload)]
    fn resume_from_previous_upload(this: &TusUpload, previous: &JsValue);

    #[wasm_bindgen(method, getter)]
    fn url(this: &TusUpload) -> Option<String>;
}

/// A resumable upload of this page, and what its row shows.
pub struct Handle {
    upload: TusUpload,
    state: ArcRwSignal<UploadState>,
    /// When the current run of sending began (the first progress after a
    /// start or resume), so the speed counts only this page's bytes.
    run: Rc<Cell<Option<f64>>>,
    /// Cancelled before the server named the upload: deleted once it does.
    cancelled: Rc<Cell<bool>>,
}

/// Whether the page loaded tus-js-client.
pub fn available() -> bool {
    Reflect::get(&js_sys::global(), &JsValue::from_str("tus")).is_ok_and(|tus| tus.is_object())
}

fn set(target: &Object, key: &str, value: &JsValue) -> Result<(), String> {
    Reflect::set(target, &JsValue::from_str(key), value)
        .map(drop)
        .map_err(js_error)
}

/// Calls a method of a JavaScript object that takes no arguments.
fn call(target: &JsValue, method: &str) -> Option<JsValue> {
    let function = Reflect::get(target, &JsValue::from_str(method)).ok()?;
    function.dyn_ref::<Function>()?.call0(target).ok()
}

/// What a tus-js-client error says: the server's answer, if there was one.
fn refusal(error: &JsValue) -> UploadState {
    let response = Reflect::get(error, &JsValue::from_str("originalResponse"))
        .ok()
        .filter(JsValue::is_object);
    let Some(response) = response else {
        return failed(0, "");
    };
    let status = call(&response, "getStatus")
        .and_then(|status| status.as_f64())
        .unwrap_or(0.0) as u16;
    let body = call(&response, "getBody")
        .and_then(|body| body.as_string())
        .unwrap_or_default();
    failed(status, &body)
}

/// Whether another try may go through: a network failure, or the server
/// busy or failing, or an upload moved on under a chunk, rather than a
/// refusal of this file (a creation refused with 409 is one: too many
/// uploads open).
fn transient(error: &JsValue) -> bool {
    let field = |name: &str| {
        Reflect::get(error, &JsValue::from_str(name))
            .ok()
            .filter(JsValue::is_object)
    };
    let creating = field("originalRequest")
        .and_then(|request| call(&request, "getMethod"))
        .and_then(|method| method.as_string())
        .is_some_and(|method| method == "POST");
    match field("originalResponse")
        .and_then(|response| call(&response, "getStatus"))
        .and_then(|status| status.as_f64())
    {
        None => true,
        Some(status) => status >= 500.0 || (!creating && (status == 409.0 || status == 423.0)),
    }
}

/// Asks the finished upload which image it became.
fn fetch_image(url: &str, task: UploadTask) -> Result<(), String> {
    let xhr = XmlHttpRequest::new().map_err(js_error)?;
    xhr.open("GET", url).map_err(js_error)?;
    xhr.set_request_header("Accept", "application/json")
        .map_err(js_error)?;
    let on_done = {
        let xhr = xhr.clone();
        Closure::<dyn FnMut()>::new(move || {
            let body = xhr.response_text().ok().flatten().unwrap_or_default();
            task.state.set(finished(xhr.status().unwrap_or(0), &body));
        })
    };
    xhr.set_onloadend(Some(on_done.as_ref().unchecked_ref()));
    on_done.forget();
    xhr.send().map_err(js_error)
}

/// Starts (or, for a file sent before, resumes) a resumable upload.
pub(super) fn start(file: web_sys::File, label: &str, public: bool) -> Result<UploadTask, String> {
    let task = new_task(&file, true);
    let run = Rc::new(Cell::new(None::<f64>));
    // The handlers need the upload, which needs them first.
    let slot = Rc::new(RefCell::new(None::<TusUpload>));
    let previous_url = Rc::new(RefCell::new(None::<String>));
    let cancelled = Rc::new(Cell::new(false));

    let on_progress = {
        let (task, run) = (task.clone(), run.clone());
        Closure::<dyn FnMut(f64, f64)>::new(move |sent: f64, total: f64| {
            let now = now_ms();
            let began = run.get().unwrap_or_else(|| {
                run.set(Some(now));
                task.baseline.set(sent);
                now
            });
            task.sent.set(sent);
            task.body_total.set(total);
            task.elapsed_ms.set(now - began);
        })
    };
    let on_url = {
        let (task, slot, previous_url) = (task.clone(), slot.clone(), previous_url.clone());
        let cancelled = cancelled.clone();
        Closure::<dyn FnMut()>::new(move || {
            if cancelled.get() {
                if let Some(upload) = slot.borrow().as_ref() {
                    let _ = upload.abort(true);
                }
                return;
            }
            // After a resumption the URL is the earlier upload's only if the
            // server still had it (otherwise a new upload was created).
            let current = slot.borrow().as_ref().and_then(TusUpload::url);
            if current.is_some() && current == *previous_url.borrow() {
                task.resumed.set(true);
            }
        })
    };
    let on_success = {
        let (task, slot) = (task.clone(), slot.clone());
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            forget(task.id);
            let url = slot.borrow().as_ref().and_then(TusUpload::url);
            let asked = url
                .ok_or_else(|| "the server named no upload".to_string())
                .and_then(|url| fetch_image(&url, task.clone()));
            if let Err(message) = asked {
                task.state.set(UploadState::Failed(message));
            }
        })
    };
    let on_error = {
        let task = task.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            match refusal(&error) {
                // Kept: Resume tries again from the server's offset.
                UploadState::Failed(message) if transient(&error) => {
                    task.state.set(UploadState::Interrupted(message));
                }
                state => {
                    forget(task.id);
                    task.state.set(state);
                }
            }
        })
    };

    let options = Object::new();
    set(&options, "endpoint", &JsValue::from_str("/api/uploads"))?;
    set(&options, "chunkSize", &JsValue::from_f64(CHUNK_BYTES))?;
    let delays = RETRY_DELAYS_MS
        .iter()
        .map(|&delay| JsValue::from(delay))
        .collect::<Array>();
    set(&options, "retryDelays", &delays)?;
    set(&options, "removeFingerprintOnSuccess", &JsValue::TRUE)?;
    let metadata = Object::new();
    set(&metadata, "filename", &JsValue::from_str(&file.name()))?;
    if !label.is_empty() {
        set(&metadata, "label", &JsValue::from_str(label))?;
    }
    if public {
        set(&metadata, "public", &JsValue::from_str("true"))?;
    }
    set(&options, "metadata", &metadata)?;
    set(&options, "onProgress", on_progress.as_ref())?;
    set(&options, "onUploadUrlAvailable", on_url.as_ref())?;
    set(&options, "onSuccess", on_success.as_ref())?;
    set(&options, "onError", on_error.as_ref())?;
    // The handlers live as long as the page; it keeps few uploads.
    on_progress.forget();
    on_url.forget();
    on_success.forget();
    on_error.forget();

    let upload = TusUpload::new(&file, &options).map_err(js_error)?;
    *slot.borrow_mut() = Some(upload.clone());

    // A file sent before (same fingerprint) goes on where the server is.
    let on_found = {
        let (upload, task) = (upload.clone(), task.clone());
        Closure::once(move |found: JsValue| {
            let found: Array = found.unchecked_into();
            if found.length() > 0 {
                let earlier = found.get(0);
                *previous_url.borrow_mut() =
                    Reflect::get(&earlier, &JsValue::from_str("uploadUrl"))
                        .ok()
                        .and_then(|url| url.as_string());
                upload.resume_from_previous_upload(&earlier);
            }
            if task.state.get_untracked() == UploadState::Sending {
                upload.start();
            }
        })
    };
    // Storage that cannot be read only means starting afresh.
    let on_unreadable = {
        let (upload, task) = (upload.clone(), task.clone());
        Closure::once(move |_: JsValue| {
            if task.state.get_untracked() == UploadState::Sending {
                upload.start();
            }
        })
    };
    let _ = upload
        .find_previous_uploads()
        .then2(&on_found, &on_unreadable);
    on_found.forget();
    on_unreadable.forget();

    track(
        task.id,
        Running::Resumable(Handle {
            upload,
            state: task.state.clone(),
            run,
            cancelled,
        }),
    );
    Ok(task)
}

pub(super) fn pause(handle: &Handle) {
    // Until the server has named the upload there is nothing to go back to.
    if handle.state.get_untracked() == UploadState::Sending && handle.upload.url().is_some() {
        handle.state.set(UploadState::Paused);
        let _ = handle.upload.abort(false);
    }
}

pub(super) fn resume(handle: &Handle) {
    if matches!(
        handle.state.get_untracked(),
        UploadState::Paused | UploadState::Interrupted(_)
    ) {
        handle.run.set(None);
        handle.state.set(UploadState::Sending);
        handle.upload.start();
    }
}

pub(super) fn cancel(handle: &Handle) {
    handle.state.set(UploadState::Cancelled);
    if handle.upload.url().is_none() {
        // Its creation may be under way: cutting it off could leave an
        // upload nobody knows of holding the quota; it is deleted once named.
        handle.cancelled.set(true);
        return;
    }
    let _ = handle.upload.abort(true);
}
