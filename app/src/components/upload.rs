//! Uploads from the browser, each file on its own. A small file goes in one
//! multipart XMLHttpRequest ([`multipart`]: `fetch` reports no upload
//! progress, XHR's `upload.onprogress` does). A file from
//! [`RESUMABLE_FROM`] up goes over tus to `/api/uploads` with tus-js-client
//! ([`tus`]): it can be paused and resumed, is retried after a network
//! drop, and after the page is reloaded or the browser restarted the same
//! file picked again (matched by its fingerprint in the browser's storage)
//! continues where the server's offset is. Both show the same row.

#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
mod multipart;
#[cfg(feature = "hydrate")]
mod tus;

use leptos::prelude::*;
use serde::Deserialize;

use crate::model::Image;

/// Files of this size and more are sent resumably, over tus.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub const RESUMABLE_FROM: f64 = (8 << 20) as f64;

/// The bytes of a resumable upload sent in one request: what a pause or a
/// dropped connection costs at most to send again, and few enough requests
/// that each one's round trip does not count.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub const CHUNK_BYTES: f64 = (32 << 20) as f64;

/// Where one upload stands.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub enum UploadState {
    Sending,
    /// A resumable upload its owner paused; what the server has is kept.
    Paused,
    Done {
        id: i64,
    },
    Failed(String),
    /// A resumable upload stopped by a failure that may pass (the network,
    /// the server busy) after its retries; Resume goes on.
    Interrupted(String),
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
    /// Bytes the server had when this run of sending began (a resumed
    /// upload's), which the speed does not count.
    pub baseline: ArcRwSignal<f64>,
    pub state: ArcRwSignal<UploadState>,
    /// Sent over tus: it can be paused and resumed.
    pub resumable: bool,
    /// Continues an upload begun earlier (before a reload, say).
    pub resumed: ArcRwSignal<bool>,
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

/// What `GET /api/uploads/{id}` answers once the upload is an image.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Deserialize)]
struct Finished {
    image: Image,
}

fn unreadable() -> UploadState {
    UploadState::Failed("the server's answer could not be read".into())
}

/// Turns the answer to a multipart upload into the upload's final state.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn outcome(status: u16, body: &str) -> UploadState {
    if status != 201 {
        return failed(status, body);
    }
    match serde_json::from_str::<Created>(body)
        .ok()
        .and_then(|c| c.images.first().map(|i| i.id))
    {
        Some(id) => UploadState::Done { id },
        None => unreadable(),
    }
}

/// Turns the answer to `GET` on a finished resumable upload into its state.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn finished(status: u16, body: &str) -> UploadState {
    if status != 200 {
        return failed(status, body);
    }
    match serde_json::from_str::<Finished>(body) {
        Ok(finished) => UploadState::Done {
            id: finished.image.id,
        },
        Err(_) => unreadable(),
    }
}

/// A refusal, with the server's own message when it sent one.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn failed(status: u16, body: &str) -> UploadState {
    if status == 0 {
        return UploadState::Failed("the connection to the server failed".into());
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

/// `1536` → `1.5 KiB`, to a tenth, rounded. In whole numbers, as sizes are:
/// one caller fewer of core's float printing, 18 KB of the WASM bundle that
/// other code (Debug output of numbers) still needs today.
///
/// Images' sizes are SQL's signed integers (none is negative), files' are
/// unsigned.
pub fn human_size(bytes: impl TryInto<u64>) -> String {
    let bytes: u64 = bytes.try_into().unwrap_or(0);
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale: u64 = 1;
    while bytes / scale >= 1024 && unit + 1 < UNITS.len() {
        scale *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(feature = "hydrate")]
pub use browser::{cancel, pause, resume, start};

/// Without WASM nothing uploads from script: the form posts itself.
#[cfg(not(feature = "hydrate"))]
pub fn start(_file: web_sys::File, _label: &str, _public: bool) -> Result<UploadTask, String> {
    Err("uploads need JavaScript".into())
}

#[cfg(not(feature = "hydrate"))]
pub fn cancel(_id: usize) {}

#[cfg(not(feature = "hydrate"))]
pub fn pause(_id: usize) {}

#[cfg(not(feature = "hydrate"))]
pub fn resume(_id: usize) {}

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
        baseline,
        state,
        resumable,
        resumed,
    } = task;
    let label = format!("Upload of {name}");
    let progress = {
        let (sent, body_total) = (sent.clone(), body_total.clone());
        move || {
            let elapsed = elapsed_ms.get() / 1000.0;
            let speed = if elapsed > 0.0 {
                (sent.get() - baseline.get()).max(0.0) / elapsed
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
                human_size((fraction * total) as u64),
                human_size(total as u64),
                human_size(speed as u64)
            )
        }
    };
    let status = {
        let state = state.clone();
        move || match state.get() {
            UploadState::Sending => view! { <span class="state">"Sending"</span> }.into_any(),
            UploadState::Paused => view! { <span class="state">"Paused"</span> }.into_any(),
            UploadState::Done { id } => view! {
                <a class="state done" href=format!("/image/{id}")>"Done: view image"</a>
            }
            .into_any(),
            UploadState::Failed(message) | UploadState::Interrupted(message) => {
                view! { <span class="state error" role="alert">{message}</span> }.into_any()
            }
            UploadState::Cancelled => view! { <span class="state">"Cancelled"</span> }.into_any(),
        }
    };
    let sending = {
        let state = state.clone();
        move || state.get() == UploadState::Sending
    };
    let paused = {
        let state = state.clone();
        move || {
            matches!(
                state.get(),
                UploadState::Paused | UploadState::Interrupted(_)
            )
        }
    };
    let running = {
        let (sending, paused) = (sending.clone(), paused.clone());
        move || sending() || paused()
    };
    let pause_label = format!("Pause the upload of {name}");
    let resume_label = format!("Resume the upload of {name}");
    let cancel_label = format!("Cancel the upload of {name}");
    view! {
        <li class="upload">
            <span class="file-name">{name}</span>
            <progress aria-label=label max=move || body_total.get() as u64 value=move || sent.get() as u64></progress>
            <span class="progress-text">{progress}</span>
            {status}
            <Show when=move || resumed.get()>
                <span class="note">"Resumed: the bytes sent before were kept"</span>
            </Show>
            <Show when=move || resumable && sending()>
                <button type="button" aria-label=pause_label.clone() on:click=move |_| pause(id)>"Pause"</button>
            </Show>
            <Show when=move || resumable && paused()>
                <button type="button" aria-label=resume_label.clone() on:click=move |_| resume(id)>"Resume"</button>
            </Show>
            <Show when=running>
                <button type="button" aria-label=cancel_label.clone() on:click=move |_| cancel(id)>"Cancel"</button>
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
        assert_eq!(human_size(0_u64), "0 B");
        assert_eq!(human_size(512_u64), "512 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1_048_575), "1024.0 KiB");
        assert_eq!(human_size(3_u64 << 30), "3.0 GiB");
        assert_eq!(human_size((3_u64 << 30) + (1 << 29) / 5), "3.1 GiB");
        assert_eq!(human_size(i64::MAX), "8388608.0 TiB");
        assert_eq!(human_size(-1), "0 B");
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

    #[test]
    fn a_resumable_upload_ends_with_the_servers_word() {
        assert_eq!(
            finished(400, r#"{"error":"refused: not a disk image","status":400}"#),
            UploadState::Failed("refused: not a disk image".into())
        );
        assert_eq!(finished(200, "{}"), unreadable());
        assert_eq!(
            failed(0, ""),
            UploadState::Failed("the connection to the server failed".into())
        );
    }
}
