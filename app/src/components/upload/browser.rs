//! The uploads running on this page, so that a row's buttons reach its own,
//! and the choice of how each file is sent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use leptos::prelude::*;
use web_sys::XmlHttpRequest;

use super::{multipart, tus, UploadState, UploadTask, RESUMABLE_FROM};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// How a running upload is reached.
pub(super) enum Running {
    Multipart(XmlHttpRequest),
    Resumable(tus::Handle),
}

thread_local! {
    static RUNNING: RefCell<HashMap<usize, Running>> = RefCell::new(HashMap::new());
}

pub(super) fn track(id: usize, running: Running) {
    RUNNING.with(|all| all.borrow_mut().insert(id, running));
}

pub(super) fn forget(id: usize) {
    RUNNING.with(|all| all.borrow_mut().remove(&id));
}

pub(super) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// What a failed browser call says, for the person who sees it: the error's
/// own text (`Error: …`), not its `Debug` form (`JsValue(Error: …)` followed
/// by the script's stack).
pub(super) fn js_error(error: wasm_bindgen::JsValue) -> String {
    use wasm_bindgen::JsCast;

    if let Some(text) = error.as_string() {
        return text;
    }
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.to_string());
    }
    js_sys::JSON::stringify(&error)
        .ok()
        .and_then(|text| text.as_string())
        .unwrap_or_else(|| "the browser gave no reason".to_owned())
}

/// A new row for `file`, sending.
pub(super) fn new_task(file: &web_sys::File, resumable: bool) -> UploadTask {
    UploadTask {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name: file.name(),
        total: file.size(),
        sent: ArcRwSignal::new(0.0),
        body_total: ArcRwSignal::new(file.size()),
        elapsed_ms: ArcRwSignal::new(0.0),
        baseline: ArcRwSignal::new(0.0),
        state: ArcRwSignal::new(UploadState::Sending),
        resumable,
        resumed: ArcRwSignal::new(false),
    }
}

/// Starts sending `file`: resumably if it is large and tus-js-client is
/// loaded, in one request otherwise.
pub fn start(file: web_sys::File, label: &str, public: bool) -> Result<UploadTask, String> {
    if file.size() >= RESUMABLE_FROM && tus::available() {
        tus::start(file, label, public)
    } else {
        multipart::start(file, label, public)
    }
}

/// Stops a resumable upload; what the server has is kept for [`resume`].
pub fn pause(id: usize) {
    RUNNING.with(|all| {
        if let Some(Running::Resumable(upload)) = all.borrow().get(&id) {
            tus::pause(upload);
        }
    });
}

/// Goes on with a paused upload from the server's offset.
pub fn resume(id: usize) {
    RUNNING.with(|all| {
        if let Some(Running::Resumable(upload)) = all.borrow().get(&id) {
            tus::resume(upload);
        }
    });
}

/// Stops an upload for good: a resumable one is deleted on the server too.
pub fn cancel(id: usize) {
    let running = RUNNING.with(|all| all.borrow_mut().remove(&id));
    match running {
        Some(Running::Multipart(xhr)) => {
            let _ = xhr.abort();
        }
        Some(Running::Resumable(upload)) => tus::cancel(&upload),
        None => {}
    }
}
