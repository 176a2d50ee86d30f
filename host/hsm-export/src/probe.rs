//! Readiness probes as commands run inside a service's own network namespace:
//! Compose's healthchecks run in the container, and Kubernetes' one-shot
//! containers wait for their server with the same commands. hsm probes from the
//! host; an exported stack has no such place, so TCP and HTTP probes become shell
//! commands that use what the image has (curl, wget, or bash's `/dev/tcp`).

use hsm_plan::{Endpoint, Exec, Probe};

use crate::refs::shell_word;

/// What a probe needs from the container it runs in, and how it runs there.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// A command, as argv (an exec probe).
    Argv(Vec<String>),
    /// A POSIX shell command line.
    Shell(String),
}

impl Check {
    /// The check as one shell command line.
    pub(crate) fn shell(&self) -> String {
        match self {
            Self::Argv(argv) => argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "),
            Self::Shell(line) => line.clone(),
        }
    }
}

/// The container a probe checks, and the check; `Err` says why it can't be run
/// inside the service.
pub(crate) fn check(probe: &Probe) -> Result<(&str, Check), String> {
    match probe {
        Probe::Exec(exec) => Ok((&exec.container, Check::Argv(plain_argv(exec, "the probe")?))),
        Probe::Tcp { endpoint } => {
            let (container, port) = own_port(endpoint)?;
            Ok((container, Check::Shell(tcp(port))))
        }
        Probe::Http { endpoint, path, tls, status, headers } => {
            let (container, port) = own_port(endpoint)?;
            let mut header_args = Vec::new();
            for (name, value) in headers {
                let value = value.as_plain().ok_or_else(|| {
                    format!(
                        "the probe's header `{name}` holds a secret, which a check inside the container can't be given"
                    )
                })?;
                header_args.push(format!("{name}: {value}"));
            }
            Ok((container, Check::Shell(http(port, path, *tls, *status, &header_args))))
        }
    }
}

/// The argv of an exec with no references and no extra environment or user (what a
/// healthcheck or a Kubernetes probe can run).
pub(crate) fn plain_argv(exec: &Exec, what: &str) -> Result<Vec<String>, String> {
    if !exec.env.is_empty() || exec.user.is_some() {
        return Err(format!("{what} sets its own environment or user, which a check inside the container can't"));
    }
    exec.command
        .iter()
        .map(|t| t.as_plain().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{what}'s command holds a secret or a host port"))
}

fn own_port(endpoint: &Endpoint) -> Result<(&str, u16), String> {
    match endpoint {
        Endpoint::ContainerPort { container, port } => Ok((container, *port)),
        Endpoint::Address { .. } => {
            Err("the probe checks another host, which an exported stack can't do before it starts".to_string())
        }
    }
}

/// A TCP connection to the port on the container's loopback.
fn tcp(port: u16) -> String {
    format!(
        "if command -v nc >/dev/null 2>&1; then nc -z 127.0.0.1 {port}; else bash -c ': >/dev/tcp/127.0.0.1/{port}' 2>/dev/null; fi"
    )
}

/// An HTTP GET of the path on the container's loopback, passing on `status` (2xx
/// when `None`): with curl, else wget, else bash's `/dev/tcp` (plain HTTP only).
fn http(port: u16, path: &str, tls: bool, status: Option<u16>, headers: &[String]) -> String {
    let scheme = if tls { "https" } else { "http" };
    let url = shell_word(&format!("{scheme}://127.0.0.1:{port}{path}"));
    let curl_h: String = headers.iter().map(|h| format!(" -H {}", shell_word(h))).collect();
    let wget_h: String = headers.iter().map(|h| format!(" --header={}", shell_word(h))).collect();
    let raw_h: String = headers.iter().map(|h| format!("{h}\\r\\n")).collect();
    let want = status.map_or_else(|| "2??".to_string(), |s| s.to_string());
    let mut line = format!(
        "if command -v curl >/dev/null 2>&1; then c=$(curl -gks --max-time 5 -o /dev/null -w '%{{http_code}}'{curl_h} {url}); \
         elif command -v wget >/dev/null 2>&1; then c=$(wget -q -S -T 5 -O /dev/null --no-check-certificate{wget_h} {url} 2>&1 | awk '/^ *HTTP\\//{{c=$2}} END{{print c}}'); "
    );
    if !tls {
        let request = shell_word(&format!("GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n{raw_h}\\r\\n"));
        line.push_str(&format!(
            "else c=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf %b \"$0\" >&3 && read -r _ c _ <&3 && echo \"$c\"' {request}); "
        ));
    }
    line.push_str(&format!("fi; case \"$c\" in {want}) exit 0;; esac; exit 1"));
    line
}

#[cfg(test)]
mod tests {
    use hsm_model::Text;

    use super::*;

    /// The HTTP check passes against a real server and fails on a wrong status, in
    /// each of its ways (curl, wget, bash), with whatever this machine has.
    #[test]
    fn the_http_check_asks_a_real_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let mut s = stream.unwrap();
                // The whole request (a client may write it in pieces): closing with
                // unread bytes would reset the connection under the response.
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let ok = request.starts_with(b"GET /readyz ");
                let status = if ok { "200 OK" } else { "404 Not Found" };
                let _ = s.write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        });
        let run = |line: &str| std::process::Command::new("sh").arg("-c").arg(line).status().unwrap().success();
        assert!(run(&http(port, "/readyz", false, None, &[])));
        assert!(!run(&http(port, "/other", false, None, &[])));
        assert!(run(&http(port, "/other", false, Some(404), &[])));
        // Without curl and wget on the PATH: bash's /dev/tcp.
        let bare = format!(
            "PATH=/nonexistent; {}",
            http(port, "/readyz", false, None, &[]).replace("bash -c", "/bin/bash -c")
        );
        assert!(run(&bare), "{bare}");
        assert!(run(&tcp(port)));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(!run(&tcp(closed)));
    }

    #[test]
    fn probes_that_need_the_host_are_refused() {
        let probe = Probe::Tcp {
            endpoint: Endpoint::Address { host: Text::literal("db.example"), port: Text::literal("5432") },
        };
        assert!(check(&probe).unwrap_err().contains("another host"));
        let exec =
            Exec { container: "c".into(), command: vec![Text::literal("true")], env: vec![], user: Some("x".into()) };
        assert!(check(&Probe::Exec(exec)).unwrap_err().contains("user"));
    }
}
