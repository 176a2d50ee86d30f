//! The example `fileserver` plugin (`examples/plugins/fileserver`, written with the
//! SDK's shared-server helpers) on the real engine: one server, a folder per
//! package, a prefix asked twice refused with the plugin's own hint, and a
//! `python3` server that stops at once because the plugin asked for an init.

use std::time::{Duration, Instant};

use crate::stack::{Project, docker, http, image};
use crate::third_party::{built, project_with_plugin};

fn registry(packages: &[(&str, &str)]) -> String {
    let mut registry = format!(
        "services:\n  files:\n    kind: fileserver\n    params: {{ image: \"{}\" }}\npackages:\n",
        image("base")
    );
    for (name, path) in packages {
        registry.push_str(&format!(
            "  {name}:\n    implies:\n      - service: files\n        params: {{ path: \"{path}\" }}\n"
        ));
    }
    registry
}

#[test]
fn each_package_gets_its_folder_and_the_server_stops_at_once() {
    let wasm = std::fs::read(built("examples/plugins/fileserver", "hsm-example-fileserver")).unwrap();
    let p = Project::new("files");
    let digest = crate::third_party::sha256(&wasm);
    let grant = format!("plugins:\n  fileserver:\n    sha256: {digest}\n    grant: [containers, exec]\n");
    let packages = [("docs", "docs"), ("site", "/www/")];
    project_with_plugin(&p, "fileserver", &wasm, &registry(&packages), &format!("packages: [docs, site]\n{grant}"));

    p.sync();
    let server = p.container("files", "server");
    assert_eq!(docker(&["inspect", "--format", "{{.HostConfig.Init}}", &server]).trim(), "true");
    let docs = p.env_values("docs")["FILESERVER_URL"].clone();
    let site = p.env_values("site")["FILESERVER_URL"].clone();
    assert!(docs.starts_with("http://127.0.0.1:") && docs.ends_with("/docs/"), "{docs}");
    assert_eq!(site, docs.replace("/docs/", "/www/"), "one server");
    docker(&["exec", &server, "sh", "-c", "echo hello > /srv/docs/a.txt"]);
    assert_eq!(http("GET", &format!("{docs}a.txt"), None), (200, "hello\n".to_string()));
    assert_eq!(http("GET", &site, None).0, 200, "the folder exists");

    // A third package asking for `docs`'s prefix: both lines, and the plugin's hint.
    let clash = [("docs", "docs"), ("site", "/www/"), ("blog", "/docs")];
    project_with_plugin(&p, "fileserver", &wasm, &registry(&clash), &format!("packages: [docs, site, blog]\n{grant}"));
    let run = p.hsm(&["plan"]).expect(2);
    assert!(
        run.stderr.contains("plugin `fileserver` says: `docs` and `blog` both ask for `path` `/docs/`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: plugin `fileserver` suggests: give each package its own `path`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("make them agree"), "{}", run.stderr);

    // python3 as PID 1 ignores SIGTERM: without the init, this waits Docker's 10 s.
    project_with_plugin(&p, "fileserver", &wasm, &registry(&packages), &format!("packages: [docs, site]\n{grant}"));
    let started = Instant::now();
    p.hsm(&["down"]).expect(0);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "`hsm down` took {took:?}");
    assert!(p.containers().is_empty());
}
