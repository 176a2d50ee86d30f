//! Readiness probes: one attempt each, returning why it failed. The wait loop in
//! `sync` retries them.
//!
//! - `exec`: the command runs in the container (Docker exec) and must exit 0.
//! - `http`: a minimal HTTP/1.1 `GET` (no client library: a status line is all hsm
//!   reads) to the published port on the host, as clients will connect.
//! - `tcp` to a container port: a connection to the container's address on the
//!   project network, *not* to the published port, because Docker's userland proxy
//!   accepts connections on the host port before the server in the container listens.

use std::time::Duration;

use hsm_model::Sensitive;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::docker::Docker;

/// A probe with every reference resolved. `shown` is what people see of it: built
/// from the plan's references (`Text::display`), never from resolved values, since
/// an external service's host can be a secret from the environment.
pub(crate) enum Resolved {
    /// Connect to `host:port`.
    Tcp { host: String, port: u16, shown: String },
    /// `GET path` on `host:port`.
    Http {
        host: String,
        port: u16,
        path: String,
        status: Option<u16>,
        headers: Vec<(String, Sensitive)>,
        shown: String,
    },
    /// Run a command in a container (by id; `name` is for people).
    Exec { container: String, name: String, cmd: Vec<Sensitive>, env: Vec<String>, user: Option<String>, shown: String },
}

impl Resolved {
    /// The probe for people (references, never secret values).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Tcp { shown, .. } => format!("TCP connection to {shown}"),
            Self::Http { shown, path, .. } => format!("GET http://{shown}{path}"),
            Self::Exec { name, shown, .. } => format!("`{shown}` in `{name}`"),
        }
    }

    /// One attempt; `Err` says why it failed. The failure may quote what the probe
    /// printed (an exec probe's last line), which can hold a secret: the caller
    /// redacts it before it goes anywhere.
    pub(crate) async fn attempt(&self, docker: &Docker, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.attempt_inner(docker)).await {
            Ok(result) => result,
            Err(_) => Err(format!("{} timed out after {}ms", self.describe(), timeout.as_millis())),
        }
    }

    async fn attempt_inner(&self, docker: &Docker) -> Result<(), String> {
        match self {
            Self::Tcp { host, port, .. } => TcpStream::connect((host.as_str(), *port))
                .await
                .map(drop)
                .map_err(|e| format!("{}: {e}", self.describe())),
            Self::Http { host, port, path, status, headers, .. } => {
                let got =
                    http_get(host, *port, path, headers).await.map_err(|e| format!("{}: {e}", self.describe()))?;
                let ok = match status {
                    Some(want) => got == *want,
                    None => (200..300).contains(&got),
                };
                if ok { Ok(()) } else { Err(format!("{} answered {got}", self.describe())) }
            }
            Self::Exec { container, cmd, env, user, shown, .. } => {
                let cmd = cmd.iter().map(|s| s.expose().to_string()).collect();
                let (code, output) =
                    docker.exec(container, cmd, env.clone(), user.clone()).await.map_err(|e| e.to_string())?;
                if code == 0 {
                    Ok(())
                } else {
                    let last = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                    let tail = if last.is_empty() { String::new() } else { format!(": {last}") };
                    Err(format!("`{shown}` exited with {code}{tail}"))
                }
            }
        }
    }
}

/// Sends `GET path` and returns the response's status code.
async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, Sensitive)]) -> std::io::Result<u16> {
    // The host checked the plan, but header values hold secrets filled in only now:
    // nothing may break out of its line into another request.
    let breaks = |s: &str| s.contains(['\r', '\n', '\0']);
    if breaks(path) || breaks(host) || headers.iter().any(|(n, v)| breaks(n) || breaks(v.expose())) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the probe's request would hold a line break (in its path, host or a header's value)",
        ));
    }
    let mut stream = TcpStream::connect((host, port)).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: hsm\r\nAccept: */*\r\n");
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value.expose());
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed without an answer"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 8192 {
            break;
        }
    }
    parse_status(&buf).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// The status code of `HTTP/1.x NNN …`.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\nx: y\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    /// A one-shot HTTP server on loopback answering `answer` and returning the request.
    async fn serve_once(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, task)
    }

    #[tokio::test]
    async fn http_probes_send_headers_and_check_the_status() {
        let (port, server) = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        let headers = vec![("api-key".to_string(), Sensitive::new("k".into()))];
        assert_eq!(http_get("127.0.0.1", port, "/readyz", &headers).await.unwrap(), 204);
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\napi-key: k\r\n"), "{request}");
    }

    #[tokio::test]
    async fn a_closed_connection_is_a_failure_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and close at once, as Docker's proxy does while nothing listens inside.
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
        });
        let err = http_get("127.0.0.1", port, "/", &[]).await.unwrap_err();
        assert!(err.to_string().contains("closed") || err.kind() == std::io::ErrorKind::ConnectionReset, "{err}");
    }
}
