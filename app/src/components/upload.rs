//! Uploads from the browser. Each file goes in its own XMLHttpRequest, because
//! `fetch` reports no upload progress and XHR's `upload.onprogress` does.

use leptos::prelude::*;
use serde::Deserialize;

use crate::model::Image;

/// Where one upload stands.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub enum UploadState {
    Sending,
    Done { id: i64 },
    Failed(String),
    Cancelled,
}

/// One file being uploaded, with the signals its row shows.
#[derive(Clone)]
pub struct UploadTask {
    pub id: usize,
    pub name: String,
    /// The file's size.
    pub total: f64,
    /// Bytes of the request body sent so far, and its whole length (the file
    /// plus the form's framing), as the browser reports them.
    pub sent: ArcRwSignal<f64>,
    pub body_total: ArcRwSignal<f64>,
    pub elapsed_ms: ArcRwSignal<f64>,
    pub state: ArcRwSignal<UploadState>,
}

/// What `POST /api/upload` answers with.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Deserialize)]
struct Created {
    images: Vec<Image>,
}

/// What every Depot-native endpoint answers on failure.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Deserialize)]
struct Failure {
    error: String,
}

/// Turns the server's answer into the upload's final state.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn outcome(status: u16, body: &str) -> UploadState {
    if status == 201 {
        return match serde_json::from_str::<Created>(body)
            .ok()
            .and_then(|c| c.images.first().map(|i| i.id))
        {
            Some(id) => UploadState::Done { id },
            None => UploadState::Failed("the server's answer could not be read".into()),
        };
    }
    let message = serde_json::from_str::<Failure>(body)
        .map(|f| f.error)
        .unwrap_or_else(|_| format!("the upload failed (HTTP {status})"));
    UploadState::Failed(message)
}

/// How long the rest of an upload takes at the speed so far: "12 s left",
/// "3 min 5 s left", "2 h 10 min left"; nothing before there is a speed
/// or once everything is sent.
pub fn time_left(remaining_bytes: f64, bytes_per_second: f64) -> Option<String> {
    if remaining_bytes <= 0.0 || bytes_per_second <= 0.0 || !bytes_per_second.is_finite() {
        return None;
    }
    let seconds = (remaining_bytes / bytes_per_second).ceil() as u64;
    Some(match seconds {
        0..=59 => format!("{seconds} s left"),
        60..=3599 => format!("{} min {} s left", seconds / 60, seconds % 60),
        _ => format!("{} h {} min left", seconds / 3600, seconds % 3600 / 60),
    })
}

/// `1536` → `1.5 KiB`.
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{FormData, ProgressEvent, XmlHttpRequest};

    use super::{outcome, UploadState, UploadTask};

    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

    thread_local! {
        /// Requests still running, so that a row's Cancel button can abort its own.
        static RUNNING: RefCell<HashMap<usize, XmlHttpRequest>> = RefCell::new(HashMap::new());
    }

    fn now_ms() -> f64 {
        js_sys::Date::now()
    }

    fn js_error(error: wasm_bindgen::JsValue) -> String {
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    }

    /// Starts sending one file as `multipart/form-data`, the same body the
    /// plain HTML form would send.
    pub fn start(file: web_sys::File, label: &str, public: bool) -> Result<UploadTask, String> {
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

        let task = UploadTask {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: file.name(),
            total: file.size(),
            sent: ArcRwSignal::new(0.0),
            body_total: ArcRwSignal::new(file.size()),
            elapsed_ms: ArcRwSignal::new(0.0),
            state: ArcRwSignal::new(UploadState::Sending),
        };
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
                RUNNING.with(|running| running.borrow_mut().remove(&task.id));
            })
        };
        let on_error = {
            let task = task.clone();
            Closure::<dyn FnMut()>::new(move || {
                task.state.set(UploadState::Failed(
                    "the connection to the server failed".into(),
                ));
                RUNNING.with(|running| running.borrow_mut().remove(&task.id));
            })
        };
        let on_abort = {
            let task = task.clone();
            Closure::<dyn FnMut()>::new(move || {
                task.state.set(UploadState::Cancelled);
                RUNNING.with(|running| running.borrow_mut().remove(&task.id));
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
        RUNNING.with(|running| running.borrow_mut().insert(task.id, xhr));
        Ok(task)
    }

    pub fn cancel(id: usize) {
        if let Some(xhr) = RUNNING.with(|running| running.borrow_mut().remove(&id)) {
            let _ = xhr.abort();
        }
    }
}

#[cfg(feature = "hydrate")]
pub use browser::{cancel, start};

/// Without WASM nothing uploads from script: the form posts itself.
#[cfg(not(feature = "hydrate"))]
pub fn start(_file: web_sys::File, _label: &str, _public: bool) -> Result<UploadTask, String> {
    Err("uploads need JavaScript".into())
}

#[cfg(not(feature = "hydrate"))]
pub fn cancel(_id: usize) {}

/// The rows of the uploads started on this page.
#[component]
pub fn UploadList(tasks: ReadSignal<Vec<UploadTask>>) -> impl IntoView {
    view! {
        <ul class="uploads">
            <For each=move || tasks.get() key=|task| task.id let:task>
                <UploadRow task/>
            </For>
        </ul>
    }
}

#[component]
fn UploadRow(task: UploadTask) -> impl IntoView {
    let UploadTask {
        id,
        name,
        total,
        sent,
        body_total,
        elapsed_ms,
        state,
    } = task;
    let label = format!("Upload of {name}");
    let name_for_cancel = name.clone();
    let progress = {
        let (sent, body_total) = (sent.clone(), body_total.clone());
        move || {
            let elapsed = elapsed_ms.get() / 1000.0;
            let speed = if elapsed > 0.0 {
                sent.get() / elapsed
            } else {
                0.0
            };
            // The body is a little longer than the file; show file bytes.
            let fraction = (sent.get() / body_total.get().max(1.0)).min(1.0);
            let left = time_left(body_total.get() - sent.get(), speed)
                .map(|left| format!(" · {left}"))
                .unwrap_or_default();
            format!(
                "{} of {} · {}/s{left}",
                human_size(fraction * total),
                human_size(total),
                human_size(speed)
            )
        }
    };
    let status = {
        let state = state.clone();
        move || match state.get() {
            UploadState::Sending => view! { <span class="state">"Sending"</span> }.into_any(),
            UploadState::Done { id } => view! {
                <a class="state done" href=format!("/image/{id}")>"Done: view image"</a>
            }
            .into_any(),
            UploadState::Failed(message) => {
                view! { <span class="state error" role="alert">{message}</span> }.into_any()
            }
            UploadState::Cancelled => view! { <span class="state">"Cancelled"</span> }.into_any(),
        }
    };
    let sending = move || state.get() == UploadState::Sending;
    view! {
        <li class="upload">
            <span class="file-name">{name}</span>
            <progress aria-label=label max=move || body_total.get() value=move || sent.get()></progress>
            <span class="progress-text">{progress}</span>
            {status}
            <Show when=sending>
                <button type="button" aria-label=format!("Cancel the upload of {name_for_cancel}") on:click=move |_| cancel(id)>"Cancel"</button>
            </Show>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_like_a_person_would_say_it() {
        assert_eq!(time_left(0.0, 100.0), None);
        assert_eq!(time_left(100.0, 0.0), None);
        assert_eq!(time_left(1000.0, 100.0).as_deref(), Some("10 s left"));
        assert_eq!(
            time_left(18_500.0, 100.0).as_deref(),
            Some("3 min 5 s left")
        );
        assert_eq!(
            time_left(7_800_000.0, 1000.0).as_deref(),
            Some("2 h 10 min left")
        );
    }

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_size(512.0), "512 B");
        assert_eq!(human_size(1536.0), "1.5 KiB");
        assert_eq!(human_size(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }

    #[test]
    fn failures_show_the_server_message() {
        assert_eq!(
            outcome(
                413,
                r#"{"error":"the file exceeds your quota","status":413}"#
            ),
            UploadState::Failed("the file exceeds your quota".into())
        );
        assert_eq!(
            outcome(502, "<html>"),
            UploadState::Failed("the upload failed (HTTP 502)".into())
        );
    }
}
