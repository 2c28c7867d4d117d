//! `brasa serve`: a static server for the demo and for model registries, with the headers
//! both need: strong ETags and 304s, `Cache-Control: no-cache` for manifests and
//! `immutable` for content-addressed files, Range requests, CORS, the wasm MIME type and
//! cross-origin isolation (COOP/COEP) for pages that want wasm threads.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

type Body = Box<dyn Read + Send>;

/// A listening socket with TCP_NODELAY, which Linux passes on to accepted connections.
/// tiny_http writes headers and body through a 1 KiB buffer, so a small response leaves in
/// two segments; with Nagle's algorithm the second waits for the client's delayed ACK,
/// adding ~40 ms to every manifest request.
fn listener(host: &str, port: u16) -> Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;

    let addr =
        (host, port).to_socket_addrs()?.next().with_context(|| format!("{host} resolves to nothing"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Serve `dir` until the process is stopped.
pub fn run(dir: &Path, host: &str, port: u16) -> Result<()> {
    let root = dir.canonicalize().with_context(|| format!("serving {}", dir.display()))?;
    let server = Server::from_listener(listener(host, port)?, None)
        .map_err(|e| anyhow::anyhow!("binding {host}:{port}: {e}"))?;
    let addr = server.server_addr().to_ip().context("not an IP listener")?;
    // Printed on its own line so scripts and tests can find the port.
    println!("serving {} on http://{addr}/", root.display());
    let etags = EtagCache::default();
    // A few workers answer in parallel, so one slow client (or a 20 MB wasm going out) never
    // holds up the requests behind it.
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                while let Ok(request) = server.recv() {
                    let response = respond(&root, &etags, &request);
                    let _ = request.respond(response);
                }
            });
        }
    });
    Ok(())
}

/// Requests answered at once.
const WORKERS: usize = 8;

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
            None => format!("\"sha256-{}\"", brasa_registry::sha256_hex(&std::fs::read(path)?)),
        };
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(path.to_path_buf(), (len, modified, tag.clone()));
        }
        Ok(tag)
    }
}

fn content_hash_in_name(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let hash = name.strip_prefix("sha256-")?.split('.').next()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header names and values are ASCII")
}

fn request_header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

fn respond(root: &Path, etags: &EtagCache, request: &Request) -> Response<Body> {
    let mut response = match request.method() {
        Method::Options => empty(204),
        Method::Get | Method::Head => match resolve(root, request.url()) {
            Some(path) => {
                serve_file(&path, etags, request).unwrap_or_else(|_| text(500, "could not read file\n"))
            }
            None => text(404, "not found\n"),
        },
        _ => {
            let mut r = text(405, "method not allowed\n");
            r.add_header(header("Allow", "GET, HEAD, OPTIONS"));
            r
        }
    };
    for (name, value) in [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
        ("Access-Control-Allow-Headers", "Range, If-None-Match"),
        ("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, Accept-Ranges"),
        // Cross-origin isolation gives pages SharedArrayBuffer and wasm threads.
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Embedder-Policy", "require-corp"),
        ("Cross-Origin-Resource-Policy", "cross-origin"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        response.add_header(header(name, value));
    }
    response
}

fn serve_file(path: &Path, etags: &EtagCache, request: &Request) -> std::io::Result<Response<Body>> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let etag = etags.get(path, len, meta.modified()?)?;
    let cache_control = if content_hash_in_name(path).is_some() {
        "public, max-age=31536000, immutable"
    } else {
        // Manifests, pages and scripts: always revalidate (cheap with the ETag).
        "no-cache"
    };
    let common = |r: Response<Body>| {
        // Always a Content-Length, never chunked: clients show download progress from it.
        let mut r = r.with_chunked_threshold(usize::MAX);
        r.add_header(header("ETag", &etag));
        r.add_header(header("Cache-Control", cache_control));
        r.add_header(header("Accept-Ranges", "bytes"));
        r
    };

    if let Some(tags) = request_header(request, "If-None-Match")
        && tags.split(',').any(|t| t.trim() == etag || t.trim() == "*")
    {
        return Ok(common(empty(304)));
    }
    // tiny_http sends headers only for HEAD; the body is never read.
    let mime = mime_for(path);
    let range = request_header(request, "Range").map(|r| parse_range(r, len));
    Ok(match range {
        None | Some(RangeRequest::Ignored) => {
            let body: Body = Box::new(file);
            common(Response::new(
                StatusCode(200),
                vec![header("Content-Type", &mime)],
                body,
                Some(len as usize),
                None,
            ))
        }
        Some(RangeRequest::Unsatisfiable) => {
            let mut r = common(text(416, "range not satisfiable\n"));
            r.add_header(header("Content-Range", &format!("bytes */{len}")));
            r
        }
        Some(RangeRequest::Bytes(start, end)) => {
            file.seek(SeekFrom::Start(start))?;
            let count = end - start + 1;
            let body: Body = Box::new(file.take(count));
            common(Response::new(
                StatusCode(206),
                vec![
                    header("Content-Type", &mime),
                    header("Content-Range", &format!("bytes {start}-{end}/{len}")),
                ],
                body,
                Some(count as usize),
                None,
            ))
        }
    })
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
    Response::new(StatusCode(status), vec![], Box::new(std::io::empty()) as Body, Some(0), None)
}

fn text(status: u16, body: &'static str) -> Response<Body> {
    Response::new(
        StatusCode(status),
        vec![header("Content-Type", "text/plain; charset=utf-8"), header("Cache-Control", "no-store")],
        Box::new(body.as_bytes()) as Body,
        Some(body.len()),
        None,
    )
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

/// Map a request path to a file under `root`, refusing anything that escapes it.
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
    resolved.is_file().then_some(resolved)
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
    fn content_addressed_names() {
        let hash = "a".repeat(64);
        assert_eq!(content_hash_in_name(Path::new(&format!("f/sha256-{hash}.bpk"))), Some(hash.as_str()));
        assert_eq!(content_hash_in_name(Path::new("f/manifest.json")), None);
    }
}
