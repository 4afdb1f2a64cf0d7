//! A guard on the bodies of the forms that take files. The form parser
//! (multer, under axum's `Multipart`) streams a part's contents, but keeps in
//! memory everything before the first boundary and each part's header block
//! until it finds where they end, searching all it holds again at every
//! chunk. These routes take bodies of any length, so one request with no
//! boundary in it, or a header block that never ends, would fill the
//! server's memory and keep a core busy. The guard follows the body's
//! structure as it passes, as the parser reads it, and cuts it off (400)
//! when either runs longer than a header block ever needs; the contents of
//! parts pass untouched.

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_TYPE;
use axum::routing::MethodRouter;
use bytes::Bytes;
use futures_util::StreamExt;
use memchr::memmem;
use std::error::Error as _;

/// The most a preamble or one part's header block may take.
pub const MAX_PRELUDE: usize = 64 * 1024;

/// The longest boundary RFC 2046 allows; every client's is shorter.
const MAX_BOUNDARY: usize = 70;

/// A route whose form carries files: its body has no size limit (the files
/// stream to the store, which limits them), and it passes the guard.
pub fn streamed_form<S>(route: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route
        .layer::<_, std::convert::Infallible>(axum::middleware::map_request(guard_multipart))
        .layer(DefaultBodyLimit::disable())
}

/// Middleware: wraps the body of a `multipart/form-data` request in the guard.
async fn guard_multipart(request: Request) -> Request {
    let boundary = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| multer::parse_boundary(value).ok());
    let Some(boundary) = boundary else {
        return request;
    };
    let (parts, body) = request.into_parts();
    let mut scanner = FormScanner::new(&boundary);
    let guarded = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        match &mut scanner {
            Ok(scanner) => scanner.feed(&chunk)?,
            Err(refusal) => return Err((*refusal).into()),
        }
        Ok::<Bytes, axum::Error>(chunk)
    });
    Request::from_parts(parts, Body::from_stream(guarded))
}

/// Why a form could not be read, with the cause the parser's own message
/// leaves out ("failed to read stream": the guard's refusal, say).
pub fn reason(error: &MultipartError) -> String {
    let mut text = String::new();
    let mut cause = error.source();
    while let Some(error) = cause {
        // Wrappers that show their inner error's message add nothing.
        let message = error.to_string();
        if !text.ends_with(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        cause = error.source();
    }
    text
}

/// Where in the form the bytes seen so far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first boundary.
    Preamble,
    /// Just after a boundary: `--` ends the form, anything else goes on.
    AfterBoundary,
    /// The rest of a boundary's line (padding), up to its line end.
    BoundaryLine,
    /// A part's header block, up to its blank line.
    Headers,
    /// A part's contents, up to the next boundary.
    Contents,
    /// After the closing boundary: the parser reads no further.
    Epilogue,
}

/// Follows a form's structure across chunks, counting the bytes of the
/// stage the parser would hold in memory.
#[derive(Debug)]
struct FormScanner {
    /// `--boundary`, which opens the form.
    opening: Vec<u8>,
    /// `\r\n--boundary`, which ends a part's contents.
    delimiter: Vec<u8>,
    stage: Stage,
    /// Bytes seen in the current stage.
    held: usize,
    /// The last bytes of the current stage seen so far, fewer than the
    /// pattern being looked for: a pattern may straddle two chunks.
    carry: Vec<u8>,
}

/// A form the guard stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoBoundary,
    EndlessHeaders,
    LongBoundary,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBoundary => write!(
                f,
                "the form has no boundary in its first {MAX_PRELUDE} bytes"
            ),
            Self::EndlessHeaders => write!(
                f,
                "a part of the form has more than {MAX_PRELUDE} bytes of headers"
            ),
            Self::LongBoundary => write!(
                f,
                "the form's boundary is longer than {MAX_BOUNDARY} characters"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for axum::Error {
    fn from(refusal: Refusal) -> Self {
        axum::Error::new(refusal)
    }
}

impl FormScanner {
    fn new(boundary: &str) -> Result<Self, Refusal> {
        if boundary.len() > MAX_BOUNDARY {
            return Err(Refusal::LongBoundary);
        }
        let opening = [b"--", boundary.as_bytes()].concat();
        let delimiter = [b"\r\n", opening.as_slice()].concat();
        Ok(Self {
            opening,
            delimiter,
            stage: Stage::Preamble,
            held: 0,
            carry: Vec::new(),
        })
    }

    /// Takes the next chunk of the body.
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Refusal> {
        while !chunk.is_empty() {
            let pattern: &[u8] = match self.stage {
                Stage::Epilogue => return Ok(()),
                Stage::AfterBoundary => {
                    chunk = self.after_boundary(chunk);
                    continue;
                }
                Stage::Preamble => &self.opening,
                Stage::BoundaryLine => b"\r\n",
                Stage::Headers => b"\r\n\r\n",
                Stage::Contents => &self.delimiter,
            };
            let found = find_across(&self.carry, chunk, pattern);
            let seen = found.unwrap_or(chunk.len());
            self.held = self.held.saturating_add(seen);
            if self.held > MAX_PRELUDE {
                match self.stage {
                    Stage::Preamble => return Err(Refusal::NoBoundary),
                    Stage::BoundaryLine | Stage::Headers => return Err(Refusal::EndlessHeaders),
                    _ => {}
                }
            }
            let Some(end) = found else {
                self.carry = tail_of(&self.carry, chunk, pattern.len() - 1);
                return Ok(());
            };
            chunk = &chunk[end..];
            let next = match self.stage {
                Stage::BoundaryLine => Stage::Headers,
                Stage::Headers => Stage::Contents,
                _ => Stage::AfterBoundary,
            };
            self.enter(next);
        }
        Ok(())
    }

    /// Reads the two bytes after a boundary (`--` closes the form; the
    /// parser takes padding, then a line end, before a part's headers);
    /// answers the rest of the chunk.
    fn after_boundary<'c>(&mut self, chunk: &'c [u8]) -> &'c [u8] {
        let taken = (2 - self.carry.len()).min(chunk.len());
        self.carry.extend_from_slice(&chunk[..taken]);
        if self.carry.len() == 2 {
            let first = std::mem::take(&mut self.carry);
            match first.as_slice() {
                b"--" => self.enter(Stage::Epilogue),
                b"\r\n" => self.enter(Stage::Headers),
                [_, b'\r'] => {
                    self.enter(Stage::BoundaryLine);
                    self.carry.push(b'\r');
                }
                _ => self.enter(Stage::BoundaryLine),
            }
        }
        &chunk[taken..]
    }

    fn enter(&mut self, stage: Stage) {
        self.stage = stage;
        self.held = 0;
        self.carry.clear();
    }
}

/// Where `pattern` ends in `chunk` (an index into `chunk`), when it occurs
/// in `carry` followed by `chunk`; `carry` is shorter than `pattern`.
fn find_across(carry: &[u8], chunk: &[u8], pattern: &[u8]) -> Option<usize> {
    if !carry.is_empty() {
        // Only a match that begins in the carry needs the two joined.
        let head = &chunk[..chunk.len().min(pattern.len() - 1)];
        let joined = [carry, head].concat();
        if let Some(start) = memmem::find(&joined, pattern) {
            return Some(start + pattern.len() - carry.len());
        }
    }
    memmem::find(chunk, pattern).map(|start| start + pattern.len())
}

/// The last `keep` bytes of `carry` followed by `chunk`.
fn tail_of(carry: &[u8], chunk: &[u8], keep: usize) -> Vec<u8> {
    if chunk.len() >= keep {
        return chunk[chunk.len() - keep..].to_vec();
    }
    let from_carry = keep - chunk.len();
    let start = carry.len().saturating_sub(from_carry);
    [&carry[start..], chunk].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "X-BOUNDARY-42";

    /// A form as browsers send it: a text field and a file of `size` bytes
    /// that hold CRs, LFs and near-boundaries, then an epilogue.
    fn form(size: usize) -> Vec<u8> {
        let contents: Vec<u8> = (0..size)
            .map(|i| match i % 97 {
                0 => b'\r',
                1 => b'\n',
                2 | 3 => b'-',
                _ => b'a' + (i % 26) as u8,
            })
            .collect();
        [
            format!("preamble\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"folder\"\r\n\r\ncds\r\n").as_bytes(),
            // Padding after a boundary, which the parser skips.
            format!("--{BOUNDARY} \t\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.iso\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            &contents,
            format!("\r\n--{BOUNDARY}--\r\n").as_bytes(),
            &vec![b'e'; MAX_PRELUDE * 2],
        ]
        .concat()
    }

    fn scan(body: &[u8], chunk_size: usize) -> Result<Stage, Refusal> {
        let mut scanner = FormScanner::new(BOUNDARY)?;
        for chunk in body.chunks(chunk_size) {
            scanner.feed(chunk)?;
        }
        Ok(scanner.stage)
    }

    #[test]
    fn a_whole_form_passes_however_it_is_cut() {
        let body = form(300_000);
        for chunk_size in [1, 2, 3, 5, 13, 16, 17, 4096, 65_536, body.len()] {
            let stage = scan(&body, chunk_size).unwrap();
            assert_eq!(stage, Stage::Epilogue, "in chunks of {chunk_size}");
        }
    }

    #[test]
    fn contents_of_any_length_pass() {
        let mut scanner = FormScanner::new(BOUNDARY).unwrap();
        let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
        scanner.feed(head.as_bytes()).unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            scanner.feed(&block).unwrap();
        }
        assert_eq!(scanner.stage, Stage::Contents);
        assert!(scanner.carry.len() < scanner.delimiter.len());
    }

    #[test]
    fn a_body_without_a_boundary_is_cut_off() {
        let body = vec![b'a'; MAX_PRELUDE + 1];
        for chunk_size in [1, 1000, body.len()] {
            assert_eq!(scan(&body, chunk_size), Err(Refusal::NoBoundary));
        }
        assert_eq!(scan(&body[..MAX_PRELUDE], 1000), Ok(Stage::Preamble));
        // Nor with the boundary just past the limit, in the same chunk.
        let late = [&body[..], format!("--{BOUNDARY}\r\n").as_bytes()].concat();
        assert_eq!(scan(&late, late.len()), Err(Refusal::NoBoundary));
    }

    #[test]
    fn headers_that_never_end_are_cut_off() {
        // After a first part, so that the count starts again at each part.
        let first =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n");
        let endless = [
            format!("--{BOUNDARY}\r\nX-Long: "),
            // The boundary line's own end is not the first half of the
            // blank line: the parser takes it before it reads headers.
            format!("--{BOUNDARY}\r\n\r\n"),
            // Nor is it when padding comes first.
            format!("--{BOUNDARY} \t\r\n\r\n"),
            // A boundary line that never ends.
            format!("--{BOUNDARY}  "),
        ];
        for second in endless {
            let body = [
                first.as_bytes(),
                second.as_bytes(),
                &vec![b'h'; MAX_PRELUDE + 1],
            ]
            .concat();
            for chunk_size in [1, 7, 4096, body.len()] {
                assert_eq!(
                    scan(&body, chunk_size),
                    Err(Refusal::EndlessHeaders),
                    "{second:?} in chunks of {chunk_size}"
                );
            }
        }
    }

    #[test]
    fn a_boundary_longer_than_the_rfc_allows_is_refused() {
        assert!(FormScanner::new(&"b".repeat(70)).is_ok());
        assert_eq!(
            FormScanner::new(&"b".repeat(71)).unwrap_err(),
            Refusal::LongBoundary
        );
    }

    #[test]
    fn a_pattern_split_between_chunks_is_found() {
        let pattern = b"\r\n--abc";
        assert_eq!(find_across(b"\r\n-", b"-abcdef", pattern), Some(4));
        assert_eq!(find_across(b"", b"xx\r\n--abc", pattern), Some(9));
        assert_eq!(find_across(b"\r\n-", b"-ab", pattern), None);
        assert_eq!(tail_of(b"\r\n-", b"-ab", 6), b"\r\n--ab".to_vec());
        assert_eq!(tail_of(b"\r\n-", b"0123456789", 6), b"456789".to_vec());
    }
}
