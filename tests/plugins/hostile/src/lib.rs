//! Test fixture: a plugin that attacks the host. It uses the raw WIT bindings, not
//! the SDK, so it can return anything the types allow. What it does depends on the
//! service name it is asked about, so one component covers every attack:
//!
//! - merge: `loop` (never returns), `bomb` (allocates without end), `big` (returns
//!   16 MiB), `trap` (panics), `stack` (recurses without end), `sleep` (blocks in
//!   the host for an hour), `chatty` (prints more than the 256 KiB hsm keeps, then panics), `forged-handle`
//!   (returns a secret handle it was never given), `cycle` (a tree that contains
//!   itself), `spy` (reports everything it received and what WASI let it do).
//! - plan: `bind-root`, `bind-rw`, `foreign-exec`, `wide-port`, `uv-outside`,
//!   `uv-empty`, `file-outside`, `env-bash`, `probe-inject`, `long-wait` (actions
//!   outside any grant), `container`, `exec`, `files`, `probe`, `uv-install` (one
//!   action needing one capability each), `spy`.
#![cfg(target_arch = "wasm32")]
// The raw bindings export functions with `export_name`, which the workspace denies
// for hand-written code; plugins written with the SDK never need this.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({ path: "../../../wit/0.1.0", world: "hsm:plugin/plugin@0.1.0" });

use exports::hsm::plugin::backend::Guest;
use hsm::plugin::types::*;

struct Hostile;

fn lit(s: impl Into<String>) -> Text {
    Text { pieces: vec![Piece::Lit(s.into())] }
}

fn text_tree(s: String) -> Tree {
    Tree { nodes: vec![Node::Text(lit(s))] }
}

#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(n + 1))) + 1
}

/// What WASI lets it see or do: every entry should be an error or nothing.
fn wasi_probe() -> Vec<(String, String)> {
    let result = |r: Result<String, std::io::Error>| match r {
        Ok(s) => format!("ok: {s}"),
        Err(e) => format!("error: {e}"),
    };
    vec![
        ("read_file".into(), result(std::fs::read_to_string("/etc/passwd"))),
        ("read_dir_root".into(), result(std::fs::read_dir("/").map(|d| format!("{} entries", d.count())))),
        ("read_dir_cwd".into(), result(std::fs::read_dir(".").map(|d| format!("{} entries", d.count())))),
        ("write_file".into(), result(std::fs::write("stolen.txt", "x").map(|_| "written".into()))),
        ("env".into(), format!("{} variables", std::env::vars().count())),
        ("args".into(), format!("{} arguments", std::env::args().count())),
        ("connect_local".into(), result(std::net::TcpStream::connect("127.0.0.1:2375").map(|_| "connected".into()))),
        ("connect_remote".into(), result(std::net::TcpStream::connect("10.0.0.50:5432").map(|_| "connected".into()))),
        ("udp".into(), result(std::net::UdpSocket::bind("0.0.0.0:0").map(|_| "bound".into()))),
        (
            "clock".into(),
            format!(
                "{}",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
            ),
        ),
    ]
}

fn spy_tree(received: String) -> Tree {
    let mut nodes = vec![Node::Null];
    let mut entries = Vec::new();
    for (key, value) in std::iter::once(("received".to_string(), received)).chain(wasi_probe()) {
        entries.push((key, nodes.len() as u32));
        nodes.push(Node::Text(lit(value)));
    }
    nodes[0] = Node::Map(entries);
    Tree { nodes }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox:1".into(),
        command: None,
        env: vec![],
        ports: vec![],
        mounts: vec![],
        restart: RestartPolicy::No,
    }
}

fn exec_in(container: &str) -> Exec {
    Exec { container: container.into(), command: vec![lit("true")], env: vec![], user: None }
}

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            kinds: vec!["hostile".into()],
            params: vec![],
            settings: vec![],
            capabilities: vec![
                Capability::Containers,
                Capability::Exec,
                Capability::UvInstall,
                Capability::Files,
                Capability::NetworkProbe,
            ],
        }
    }

    fn merge(request: MergeRequest) -> Result<Tree, MergeError> {
        match request.service.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "big" => Ok(text_tree("x".repeat(16 << 20))),
            "trap" => panic!("hostile plugin panics on purpose"),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Tree { nodes: vec![Node::Null] })
            }
            "chatty" => {
                #[allow(clippy::print_stdout)] // Printing too much is the attack.
                for i in 0..20_000 {
                    println!("line {i} of a plugin that talks too much");
                }
                panic!("the chatty plugin's last words");
            }
            "stack" => Ok(text_tree(recurse(0).to_string())),
            "forged-handle" => Ok(Tree {
                nodes: vec![Node::Text(Text {
                    pieces: vec![Piece::Secret(SecretUse { handle: 99, encoding: Encoding::Raw })],
                })],
            }),
            "cycle" => Ok(Tree { nodes: vec![Node::List(vec![0])] }),
            "spy" => Ok(spy_tree(format!("{request:?}"))),
            _ => Ok(Tree { nodes: vec![Node::Null] }),
        }
    }

    fn plan(request: PlanRequest) -> Result<ServicePlan, PlanError> {
        let actions = match request.service.as_str() {
            "bind-root" => {
                let mut c = container("server");
                c.mounts.push(Mount::Bind(BindMount { source: "/".into(), target: "/host".into(), read_only: false }));
                vec![Action::EnsureContainer(c)]
            }
            "bind-rw" => {
                let mut c = container("server");
                c.mounts.push(Mount::Bind(BindMount { source: "w".into(), target: "/w".into(), read_only: false }));
                vec![Action::EnsureContainer(c)]
            }
            "uv-empty" => vec![Action::UvInstall(vec![])],
            "env-bash" => {
                return Ok(ServicePlan {
                    actions: vec![],
                    env: vec![ConsumerEnv {
                        package: None,
                        vars: vec![EnvVar { name: "BASH_ENV".into(), value: lit("/tmp/pwn.sh") }],
                    }],
                });
            }
            "probe-inject" => vec![Action::Wait(Wait {
                probe: Probe::Http(HttpProbe {
                    endpoint: Endpoint::Address(Address { host: lit("127.0.0.1"), port: lit("6379") }),
                    path: "/ HTTP/1.1\r\n\r\nFLUSHALL\r\n".into(),
                    tls: false,
                    status: None,
                    headers: vec![],
                }),
                timeout_ms: 10,
                interval_ms: 10,
            })],
            "long-wait" => vec![
                Action::EnsureContainer(container("server")),
                Action::Wait(Wait {
                    probe: Probe::Tcp(Endpoint::Address(Address { host: lit("10.0.0.50"), port: lit("5432") })),
                    timeout_ms: u32::MAX,
                    interval_ms: 1000,
                }),
            ],
            "foreign-exec" => vec![
                Action::EnsureContainer(container("server")),
                Action::Exec(exec_in("other-project-postgres-server")),
            ],
            "wide-port" => {
                let mut c = container("server");
                c.ports.push(Port {
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_port: Some(8080),
                    host_ip: Some("0.0.0.0".into()),
                });
                vec![Action::EnsureContainer(c)]
            }
            "uv-outside" => vec![Action::UvInstall(vec![PythonPackage {
                name: "passwd".into(),
                source: PackageSource::Editable("/etc".into()),
            }])],
            "file-outside" => vec![Action::WriteFile(WriteFile {
                path: "../../etc/cron.d/evil".into(),
                contents: "* * * * * root true\n".into(),
            })],
            "container" => vec![Action::EnsureContainer(container("server"))],
            "exec" => vec![Action::EnsureContainer(container("server")), Action::Exec(exec_in("server"))],
            "files" => {
                vec![Action::WriteFile(WriteFile { path: "conf/app.toml".into(), contents: "ok = true\n".into() })]
            }
            "probe" => vec![Action::Wait(Wait {
                probe: Probe::Tcp(Endpoint::Address(Address { host: lit("10.0.0.50"), port: lit("5432") })),
                timeout_ms: 10,
                interval_ms: 10,
            })],
            "spy" => {
                return Ok(ServicePlan {
                    actions: vec![],
                    env: vec![ConsumerEnv {
                        package: None,
                        vars: vec![EnvVar { name: "SPY".into(), value: lit(format!("{request:?}")) }],
                    }],
                });
            }
            _ => vec![],
        };
        Ok(ServicePlan { actions, env: vec![] })
    }
}

export!(Hostile);
