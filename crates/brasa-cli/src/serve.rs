//! `brasa serve`: a static server for the demo and for model registries, with the headers
//! both need: strong ETags and 304s, `Cache-Control: no-cache` for manifests and
//! `immutable` for content-addressed files, Range requests (with `If-Range`), CORS
//! (preflights answered for any request header), the wasm MIME type and
//! cross-origin isolation (COOP/COEP) for pages that want wasm threads.
//!
//! Built on hyper with a single-threaded tokio runtime: every connection is its own task, so
//! an idle keep-alive connection (Chromium keeps several open) never holds up anyone else.
//! File work (resolving, hashing, reading) runs on tokio's blocking pool, and file bodies go
//! out in chunks, never read whole into memory.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::JoinHandle;

type Body = Either<Full<Bytes>, FileBody>;

/// How long a connection may take to send a request's headers, and how long an idle
/// keep-alive connection stays open: a client that connects and sends nothing is dropped
/// after this, so it cannot hold a socket (or anything else) forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Threads for file work (resolving, ETag hashing, reading chunks); connections themselves
/// cost no thread.
const BLOCKING_THREADS: usize = 8;

/// Bytes read from a file per body chunk.
const CHUNK: u64 = 256 * 1024;

/// A listening socket with TCP_NODELAY, which Linux passes on to accepted connections (each
/// accepted stream also sets it, for other systems): with Nagle's algorithm a response that
/// leaves in two segments waits for the client's delayed ACK, ~40 ms per manifest request.
fn listener(host: &str, port: u16) -> Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;

    let addr =
        (host, port).to_socket_addrs()?.next().with_context(|| format!("{host} resolves to nothing"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What every request handler shares.
struct Site {
    root: PathBuf,
    etags: EtagCache,
}

/// Serve `dir` until the process is stopped.
pub fn run(dir: &Path, host: &str, port: u16) -> Result<()> {
    let root = dir.canonicalize().with_context(|| format!("serving {}", dir.display()))?;
    if !root.is_dir() {
        anyhow::bail!("--dir {}: not a folder (serve the folder that holds it)", dir.display());
    }
    let listener = listener(host, port)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("starting the server runtime")?;
    runtime.block_on(serve(listener, Site { root, etags: EtagCache::default() }))
}

async fn serve(listener: std::net::TcpListener, site: Site) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    // Printed on its own line so scripts and tests can find the port.
    println!("serving {} on http://{addr}/", site.root.display());
    let site = Arc::new(site);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait for connections to close.
                eprintln!("brasa serve: accept: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let site = Arc::clone(&site);
        let service = hyper::service::service_fn(move |request| handle(Arc::clone(&site), request));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        // Each connection is its own task. Its errors are the client's (reset, timed out,
        // malformed): nothing to report.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn handle(
    site: Arc<Site>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    // The request body is never read; hyper drains or closes as needed.
    let (parts, body) = request.into_parts();
    drop(body);
    let response = tokio::task::spawn_blocking(move || respond(&site.root, &site.etags, &parts))
        .await
        .unwrap_or_else(|_| with_common_headers(text(500, "internal error\n")));
    Ok(response)
}

/// Strong ETags are content hashes; files are hashed once per (size, mtime).
#[derive(Default)]
struct EtagCache(Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>);

impl EtagCache {
    fn get(&self, path: &Path, len: u64, modified: SystemTime) -> std::io::Result<String> {
        if let Ok(cache) = self.0.lock()
            && let Some((l, m, tag)) = cache.get(path)
            && *l == len
            && *m == modified
        {
            return Ok(tag.clone());
        }
        // Content-addressed names already carry their hash.
        let tag = match content_hash_in_name(path) {
            Some(hash) => format!("\"sha256-{hash}\""),
            None => format!("\"sha256-{}\"", sha256_file(path)?),
        };
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(path.to_path_buf(), (len, modified, tag.clone()));
        }
        Ok(tag)
    }
}

/// Lower-case hex sha256 of a file, read in chunks (a 30 MB wasm is never held whole).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};

    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn content_hash_in_name(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let hash = name.strip_prefix("sha256-")?.split('.').next()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// Content-addressed files never change; manifests, pages and scripts always revalidate
/// (cheap with the ETag).
fn cache_control_for(path: &Path) -> &'static str {
    if content_hash_in_name(path).is_some() { "public, max-age=31536000, immutable" } else { "no-cache" }
}

/// Whether an `If-None-Match` value matches `etag`, with RFC 9110's weak comparison (the
/// comparison that header uses): `W/"x"` and `"x"` are the same tag; `*` matches any.
fn none_match(if_none_match: &str, etag: &str) -> bool {
    let opaque = |tag: &str| {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag).to_owned()
    };
    let etag = opaque(etag);
    if_none_match.split(',').any(|tag| tag.trim() == "*" || opaque(tag) == etag)
}

/// Whether an `If-Range` validator is `etag` by RFC 9110's strong comparison: both strong and
/// the same tag (a weak tag or a date never matches).
fn strong_match(validator: &str, etag: &str) -> bool {
    let validator = validator.trim();
    validator.starts_with('"') && !etag.starts_with("W/") && validator == etag
}

fn header(response: &mut Response<Body>, name: &str, value: &str) {
    response.headers_mut().append(
        HeaderName::from_bytes(name.as_bytes()).expect("header names are tokens"),
        HeaderValue::from_str(value).expect("header values are ASCII"),
    );
}

/// The request's `name` headers (there may be several), as text.
fn request_headers<'a>(parts: &'a Parts, name: HeaderName) -> impl Iterator<Item = &'a str> + 'a {
    parts.headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok())
}

/// Request headers a preflight is answered for when it names none: the ones brasa's fetcher
/// and browsers' caches send (conditional requests, ranges, cache directives).
const DEFAULT_ALLOWED_HEADERS: &str =
    "Range, If-None-Match, If-Modified-Since, If-Range, If-Match, If-Unmodified-Since, Cache-Control, Pragma";

/// An `OPTIONS` request: a CORS preflight (or a plain question about methods). Files here are
/// public and never need credentials, so every origin may send any request header: the ones
/// the preflight asks for (`Access-Control-Request-Headers`) are allowed as asked, which also
/// covers `Authorization`, which a `*` would not. The answer may be cached for two hours
/// (Chromium's limit), so a client pays one preflight per URL, not one per request.
fn preflight(request: &Parts) -> Response<Body> {
    let mut r = empty(204);
    header(&mut r, "Allow", "GET, HEAD, OPTIONS");
    header(&mut r, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    // Only well-formed header names go back (anything else is left out, never echoed).
    let asked = request_headers(request, HeaderName::from_static("access-control-request-headers"))
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_ok())
        .collect::<Vec<_>>()
        .join(", ");
    let allowed = if asked.is_empty() { DEFAULT_ALLOWED_HEADERS } else { &asked };
    header(&mut r, "Access-Control-Allow-Headers", allowed);
    header(&mut r, "Access-Control-Max-Age", "7200");
    // The answer depends on what was asked: caches must not hand one preflight's to another.
    header(&mut r, "Vary", "Access-Control-Request-Headers");
    r
}

fn respond(root: &Path, etags: &EtagCache, request: &Parts) -> Response<Body> {
    let response = match request.method {
        Method::OPTIONS => preflight(request),
        Method::GET | Method::HEAD => {
            let url = request.uri.path_and_query().map_or("/", |p| p.as_str());
            match resolve(root, url) {
                Some(path) => {
                    serve_file(&path, etags, request).unwrap_or_else(|_| text(500, "could not read file\n"))
                }
                None => text(404, "not found\n"),
            }
        }
        _ => {
            let mut r = text(405, "method not allowed\n");
            header(&mut r, "Allow", "GET, HEAD, OPTIONS");
            r
        }
    };
    with_common_headers(response)
}

fn with_common_headers(mut response: Response<Body>) -> Response<Body> {
    for (name, value) in [
        // `*` and never varying by origin: no `Vary: Origin` needed, and caches may share
        // one response between every origin.
        ("Access-Control-Allow-Origin", "*"),
        // Cross-origin scripts read only safelisted response headers unless told: brasa's
        // fetcher reads `ETag`, download code `Content-Range`.
        ("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, Accept-Ranges"),
        // Cross-origin isolation gives pages SharedArrayBuffer and wasm threads.
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Embedder-Policy", "require-corp"),
        ("Cross-Origin-Resource-Policy", "cross-origin"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        header(&mut response, name, value);
    }
    response
}

fn serve_file(path: &Path, etags: &EtagCache, request: &Parts) -> std::io::Result<Response<Body>> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let etag = etags.get(path, len, meta.modified()?)?;
    let common = |mut r: Response<Body>| {
        header(&mut r, "ETag", &etag);
        header(&mut r, "Cache-Control", cache_control_for(path));
        header(&mut r, "Accept-Ranges", "bytes");
        r
    };

    // RFC 9110 §13.2.2: If-None-Match (weak comparison) first; a match is a 304, which carries
    // the validator and cache policy the 200 would, and no body (hyper sends no length).
    if request_headers(request, hyper::header::IF_NONE_MATCH).any(|tags| none_match(tags, &etag)) {
        return Ok(common(empty(304)));
    }
    let mime = mime_for(path);
    // If-Range (§13.1.5): a part only of the version the client already holds (strong
    // comparison; a date never matches, as no Last-Modified is sent), else the whole file.
    let range_applies =
        request_headers(request, hyper::header::IF_RANGE).all(|validator| strong_match(validator, &etag));
    let range = request_headers(request, hyper::header::RANGE)
        .next()
        .filter(|_| range_applies)
        .map(|r| parse_range(r, len));
    let head = request.method == Method::HEAD;
    // Always a Content-Length, never chunked: clients show download progress from it. HEAD
    // gets the same headers and no body.
    let body = |file: File, count: u64| {
        let mut r = if head {
            Response::new(Either::Left(Full::default()))
        } else {
            Response::new(Either::Right(FileBody::new(file, count)))
        };
        header(&mut r, "Content-Type", &mime);
        header(&mut r, "Content-Length", &count.to_string());
        r
    };
    Ok(match range {
        None | Some(RangeRequest::Ignored) => common(body(file, len)),
        Some(RangeRequest::Unsatisfiable) => {
            // Not the file's cache policy: a cache keys on the URL, not the range, and must
            // never store a 416 (the text's `no-store`) and hand it out for the whole file.
            let mut r = text(416, "range not satisfiable\n");
            header(&mut r, "Accept-Ranges", "bytes");
            header(&mut r, "Content-Range", &format!("bytes */{len}"));
            r
        }
        Some(RangeRequest::Bytes(start, end)) => {
            file.seek(SeekFrom::Start(start))?;
            let mut r = body(file, end - start + 1);
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            header(&mut r, "Content-Range", &format!("bytes {start}-{end}/{len}"));
            common(r)
        }
    })
}

/// `count` bytes of a file from its current position, read on the blocking pool a chunk at a
/// time as hyper asks for more: each chunk is read once into the buffer hyper writes from.
struct FileBody {
    state: FileState,
    remaining: u64,
}

enum FileState {
    Idle(File),
    Reading(JoinHandle<std::io::Result<(File, Bytes)>>),
    Done,
}

impl FileBody {
    fn new(file: File, count: u64) -> Self {
        Self { state: FileState::Idle(file), remaining: count }
    }
}

fn read_chunk(mut file: File, count: u64) -> std::io::Result<(File, Bytes)> {
    let mut buf = Vec::with_capacity(count as usize);
    file.by_ref().take(count).read_to_end(&mut buf)?;
    Ok((file, Bytes::from(buf)))
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, FileState::Done) {
                FileState::Done => return Poll::Ready(None),
                FileState::Idle(_) if this.remaining == 0 => return Poll::Ready(None),
                FileState::Idle(file) => {
                    let count = this.remaining.min(CHUNK);
                    this.state =
                        FileState::Reading(tokio::task::spawn_blocking(move || read_chunk(file, count)));
                }
                FileState::Reading(mut task) => {
                    let Poll::Ready(result) = Pin::new(&mut task).poll(cx) else {
                        this.state = FileState::Reading(task);
                        return Poll::Pending;
                    };
                    let (file, chunk) = result.map_err(std::io::Error::other)??;
                    if chunk.is_empty() {
                        // The file shrank after its length went out.
                        return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
                    }
                    this.remaining -= chunk.len() as u64;
                    this.state = FileState::Idle(file);
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A `Range` header, resolved against a file's length.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Inclusive byte range.
    Bytes(u64, u64),
    /// Syntactically valid but outside the file.
    Unsatisfiable,
    /// Not a single byte range (multiple ranges, other units, garbage): serve the whole file.
    Ignored,
}

fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Ignored };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Ignored };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) if len > 0 => Some((len.saturating_sub(n), len - 1)),
            Ok(_) => return RangeRequest::Unsatisfiable,
            Err(_) => None,
        },
        // bytes=N-: from N to the end.
        (false, true) => first.parse::<u64>().ok().map(|s| (s, len.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(len.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        Some((start, _)) if start >= len => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Bytes(start, end),
        None => RangeRequest::Ignored,
    }
}

fn empty(status: u16) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::default()));
    *r.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    r
}

fn text(status: u16, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *r.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    header(&mut r, "Content-Type", "text/plain; charset=utf-8");
    header(&mut r, "Cache-Control", "no-store");
    r
}

fn mime_for(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("wasm") => "application/wasm".into(),
        Some("js" | "mjs") => "text/javascript; charset=utf-8".into(),
        Some("json") => "application/json".into(),
        Some("bpk") => "application/octet-stream".into(),
        _ => mime_guess::from_path(path).first_or_octet_stream().to_string(),
    }
}

/// Map a request path to a file under `root` (canonical), refusing anything that escapes it:
/// `..` in the URL, and symlinks that lead out of it (one that stays inside is followed).
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let path = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    let mut resolved = root.to_path_buf();
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if resolved.is_dir() {
        resolved.push("index.html");
    }
    // Where the path really leads, every symlink followed; that is the file opened (its name
    // also sets the MIME type and cache policy).
    let target = resolved.canonicalize().ok()?;
    (target.starts_with(root) && target.is_file()).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_escape_the_root() {
        let root = std::env::temp_dir();
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/%2e%2e/etc/passwd"), None);
        assert_eq!(mime_for(Path::new("a.wasm")), "application/wasm");
    }

    #[test]
    fn parses_ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), Bytes(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Bytes(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(parse_range("items=0-1", 100), Ignored);
        assert_eq!(parse_range("bytes=9-1", 100), Ignored);
        assert_eq!(parse_range("bytes=x-", 100), Ignored);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let etag = "\"sha256-abc\"";
        assert!(none_match("\"sha256-abc\"", etag));
        assert!(none_match("W/\"sha256-abc\"", etag));
        assert!(none_match("\"x\", W/\"sha256-abc\"", etag));
        assert!(none_match(" * ", etag));
        assert!(!none_match("\"sha256-0\"", etag));
        assert!(!none_match("sha256-abc", etag));
        assert!(!none_match("", etag));
    }

    #[test]
    fn if_range_uses_strong_comparison() {
        let etag = "\"sha256-abc\"";
        assert!(strong_match(" \"sha256-abc\" ", etag));
        assert!(!strong_match("W/\"sha256-abc\"", etag));
        assert!(!strong_match("\"sha256-abd\"", etag));
        assert!(!strong_match("Tue, 01 Dec 2026 00:00:00 GMT", etag));
        assert!(!strong_match("\"sha256-abc\"", "W/\"sha256-abc\""));
    }

    #[test]
    fn cache_policy_follows_the_name() {
        let hash = "0".repeat(64);
        assert_eq!(
            cache_control_for(Path::new(&format!("f/sha256-{hash}.bpk"))),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control_for(Path::new("m/manifest.json")), "no-cache");
    }

    /// A fresh folder with `name` holding `bytes`.
    fn site_with(test: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("brasa-serve-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(name), bytes).unwrap();
        // `run` serves the canonical path, which symlink checks compare with.
        root.canonicalize().unwrap()
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn get<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn body_bytes(response: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { response.into_body().collect().await.unwrap().to_bytes().to_vec() })
    }

    #[test]
    fn answers_with_the_right_status_and_headers() {
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let root = site_with("headers", "big.wasm", &bytes);
        let etags = EtagCache::default();
        let etag = format!("\"sha256-{}\"", brasa_registry::sha256_hex(&bytes));

        let ok = respond(&root, &etags, &request(Method::GET, "/big.wasm?v=1", &[]));
        assert_eq!(ok.status(), 200);
        assert_eq!(get(&ok, "etag"), Some(etag.as_str()));
        assert_eq!(get(&ok, "content-type"), Some("application/wasm"));
        assert_eq!(get(&ok, "content-length"), Some("600000"));
        assert_eq!(get(&ok, "cache-control"), Some("no-cache"));
        assert_eq!(get(&ok, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&ok, "cross-origin-embedder-policy"), Some("require-corp"));
        // Streamed in several chunks, every byte in place.
        assert_eq!(body_bytes(ok), bytes);

        let weak = format!("W/{etag}");
        let not_modified =
            respond(&root, &etags, &request(Method::GET, "/big.wasm", &[("If-None-Match", &weak)]));
        assert_eq!(not_modified.status(), 304);
        assert_eq!(get(&not_modified, "etag"), Some(etag.as_str()));

        let range = respond(&root, &etags, &request(Method::GET, "/big.wasm", &[("Range", "bytes=300000-")]));
        assert_eq!(range.status(), 206);
        assert_eq!(get(&range, "content-range"), Some("bytes 300000-599999/600000"));
        assert_eq!(get(&range, "content-length"), Some("300000"));
        assert_eq!(body_bytes(range), &bytes[300_000..]);

        let head = respond(&root, &etags, &request(Method::HEAD, "/big.wasm", &[]));
        assert_eq!(head.status(), 200);
        assert_eq!(get(&head, "content-length"), Some("600000"));
        assert!(body_bytes(head).is_empty());

        let post = respond(&root, &etags, &request(Method::POST, "/big.wasm", &[]));
        assert_eq!(post.status(), 405);
        assert_eq!(get(&post, "allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(respond(&root, &etags, &request(Method::OPTIONS, "/big.wasm", &[])).status(), 204);
        assert_eq!(respond(&root, &etags, &request(Method::GET, "/missing", &[])).status(), 404);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A symlink that leads out of the root is not followed (the trial served /etc/passwd);
    /// one that stays inside it is.
    #[test]
    fn refuses_symlinks_that_leave_the_root() {
        let root = site_with("symlinks", "inside.txt", b"inside");
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("leakdir")).unwrap();
        std::os::unix::fs::symlink(root.join("inside.txt"), root.join("alias.txt")).unwrap();
        let etags = EtagCache::default();
        for path in ["/leak.txt", "/leakdir/secret.txt", "/leakdir/"] {
            let response = respond(&root, &etags, &request(Method::GET, path, &[]));
            assert_eq!(response.status(), 404, "{path}");
        }
        let alias = respond(&root, &etags, &request(Method::GET, "/alias.txt", &[]));
        assert_eq!(alias.status(), 200);
        assert_eq!(body_bytes(alias), b"inside");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn content_addressed_names() {
        let hash = "a".repeat(64);
        assert_eq!(content_hash_in_name(Path::new(&format!("f/sha256-{hash}.bpk"))), Some(hash.as_str()));
        assert_eq!(content_hash_in_name(Path::new("f/manifest.json")), None);
    }
}
