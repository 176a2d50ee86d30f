//! A throwaway Docker registry on loopback (the engine trusts 127.0.0.0/8 over plain
//! HTTP), serving one tiny image, so that the pull path — progress, the change it
//! reports — runs for real on a machine that reaches no public registry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::stack::{Project, docker_ok};

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tar archive holding one small file.
fn tar_with_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", contents.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[148..156].copy_from_slice(b"        ");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Serves `repo:tag` (one layer, a command that does not exist) until the process
/// ends; returns the port.
fn serve(repo: &str, tag: &str) -> u16 {
    let layer = tar_with_one_file("hello.txt", b"hello from a test registry\n");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["/no-such-program"] },
        "rootfs": { "type": "layers", "diff_ids": [digest(&layer)] },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len() }],
    }))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let manifest_paths = [format!("/v2/{repo}/manifests/{tag}"), format!("/v2/{repo}/manifests/{}", digest(&manifest))];
    let blobs = format!("/v2/{repo}/blobs/");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers (requests have no body).
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut parts = request.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            let (status, kind, body): (&str, &str, &[u8]) = if path == "/v2/" {
                ("200 OK", "application/json", b"{}")
            } else if manifest_paths.iter().any(|m| m == path) {
                ("200 OK", "application/vnd.oci.image.manifest.v1+json", &manifest)
            } else if let Some(d) = path.strip_prefix(&blobs) {
                if d == digest(&config) {
                    ("200 OK", "application/octet-stream", &config)
                } else if d == digest(&layer) {
                    ("200 OK", "application/octet-stream", &layer)
                } else {
                    ("404 Not Found", "application/json", b"{}")
                }
            } else {
                ("404 Not Found", "application/json", b"{}")
            };
            let digest_header = if kind.contains("manifest") {
                format!("Docker-Content-Digest: {}\r\n", digest(body))
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{digest_header}Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(body);
            }
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    port
}

#[test]
fn a_missing_image_is_pulled_with_progress_before_anything_else_happens() {
    let p = Project::new("pull");
    let repo = format!("hsm-e2e/{}", p.name);
    let port = serve(&repo, "1");
    let image = format!("127.0.0.1:{port}/{repo}:1");
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = docker_ok(&["rmi", "-f", &self.0]);
        }
    }
    let _remove = Remove(image.clone());
    p.setup(&[], &format!("services:\n  chunker:\n    params:\n      image: {image}\n"));

    // The image has no program to run: the pull succeeds, the start fails.
    let run = p.hsm(&["sync", "-vv", "--json"]).expect(1);
    let changes = run.json()["changes"].clone();
    assert_eq!(changes[0], json!({ "action": "pulled-image", "subject": image }), "{changes}");
    assert!(run.stderr.contains(&format!("pulling image {image}")), "{}", run.stderr);
    assert!(run.stderr.contains("Pull complete"), "each layer's progress with -vv: {}", run.stderr);
    assert!(run.stderr.contains(&format!("pulled image {image}")), "{}", run.stderr);
    assert!(run.stderr.contains("error: Docker could not start container"), "{}", run.stderr);
    assert!(docker_ok(&["image", "inspect", &image]));

    // Present now: not pulled again.
    let again = p.hsm(&["sync", "--json"]).expect(1);
    let changes = again.json()["changes"].clone();
    assert!(!changes.as_array().unwrap().iter().any(|c| c["action"] == "pulled-image"), "{changes}");
}
