use std::fs::File;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use tiny_http::{Header, Method, Response, Server, StatusCode};

/// Serve `dir` until the process is stopped.
pub fn run(dir: &Path, host: &str, port: u16) -> Result<()> {
    let root = dir.canonicalize().with_context(|| format!("serving {}", dir.display()))?;
    let server = Server::http((host, port)).map_err(|e| anyhow::anyhow!("binding {host}:{port}: {e}"))?;
    let addr = server.server_addr().to_ip().context("not an IP listener")?;
    // Printed on its own line so scripts and tests can find the port.
    println!("serving {} on http://{addr}/", root.display());
    for request in server.incoming_requests() {
        let response = respond(&root, request.method(), request.url());
        let _ = request.respond(response);
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn respond(root: &Path, method: &Method, url: &str) -> Response<Box<dyn std::io::Read + Send>> {
    let mut response = match (method, resolve(root, url)) {
        (Method::Get | Method::Head, Some(path)) => match File::open(&path) {
            Ok(file) => {
                let len = file.metadata().map(|m| m.len() as usize).ok();
                let mime = mime_for(&path);
                Response::new(
                    StatusCode(200),
                    vec![header("Content-Type", &mime)],
                    Box::new(file) as _,
                    len,
                    None,
                )
            }
            Err(_) => not_found(),
        },
        (Method::Get | Method::Head, None) => not_found(),
        _ => Response::new(StatusCode(405), vec![], Box::new(std::io::empty()) as _, Some(0), None),
    };
    // Cross-origin isolation gives pages SharedArrayBuffer and wasm threads.
    for (name, value) in [
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Embedder-Policy", "require-corp"),
        ("Cross-Origin-Resource-Policy", "cross-origin"),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        response.add_header(header(name, value));
    }
    response
}

fn not_found() -> Response<Box<dyn std::io::Read + Send>> {
    let body = b"not found\n";
    Response::new(
        StatusCode(404),
        vec![header("Content-Type", "text/plain")],
        Box::new(&body[..]) as _,
        Some(body.len()),
        None,
    )
}

fn mime_for(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("wasm") => "application/wasm".into(),
        Some("js" | "mjs") => "text/javascript; charset=utf-8".into(),
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
}
