//! Fuzzes the host's check of a plugin's plan (hsm-check's `check_plan` and
//! `review_plan`): the step between what a plugin answered, converted to hsm's
//! types, and anything running. The plan, the plugin's declarations, the user's
//! grants and the service's context are built from the input with `arbitrary`;
//! names come from a small pool of ones that mean something to the checks (own
//! containers, loopback, refused variables, paths out of `.hsm/`) or are any
//! string. The conversion of a component's answer into these types needs a
//! running component, so it is not fuzzed here (see docs/fuzzing.md).
//!
//! Whatever the plan, the check answers and agrees with itself: `check_plan`
//! refuses exactly when `review_plan` finds a problem, with the same first one, and
//! what a refusal quotes is printable (it reaches the terminal).
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use hsm_model::text::Encoding;
use hsm_model::{Capability, Piece, SecretId, Text};
use hsm_plan as plan;
use hsm_check::{CheckContext, Grants, PlannedService, PluginInfo, Refusal, Rename, check_plan, review_plan};
use hsm_check::{ParamSpec, VariableSpec};
use libfuzzer_sys::fuzz_target;

/// Strings the checks treat specially, picked by index; anything else is `Any`.
const POOL: &[&str] = &[
    "",
    "server",
    "db",
    "postgres:16",
    "registry:5000/team/app@sha256:abc",
    "/var/lib/postgresql/data",
    "/",
    "data",
    "conf/app.ini",
    "../escape",
    "/etc/passwd",
    "127.0.0.1",
    "0.0.0.0",
    "::1",
    "DATABASE_URL",
    "DB_HOST",
    "PATH",
    "LD_PRELOAD",
    "HSM_SECRET",
    "api",
    "core",
    ".hsm/postgres/x",
    "a b",
    "x\u{1b}[2J",
    "line\nbreak",
    "nul\0",
    "/healthz",
    "Content-Type",
    "postgres",
    "A-very-long-name-that-is-longer-than-thirty-two-characters",
    "SIGINT",
    "SIGKILL",
    "SIGSEGV",
];

#[derive(Arbitrary, Debug)]
enum Word {
    Pool(u8),
    Any(String),
}

impl Word {
    fn get(&self) -> String {
        match self {
            Self::Pool(i) => POOL[usize::from(*i) % POOL.len()].to_string(),
            Self::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Port {
    Postgres,
    Zero,
    Any(u16),
}

impl Port {
    fn get(&self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Zero => 0,
            Self::Any(p) => *p,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum APiece {
    Lit(Word),
    Secret(u8, bool),
    Generated(Word, bool),
    HostPort(Word, Port),
}

fn encoding(url: bool) -> Encoding {
    if url { Encoding::Url } else { Encoding::Raw }
}

fn text(pieces: &[APiece]) -> Text {
    Text::from_pieces(pieces.iter().map(|p| match p {
        APiece::Lit(w) => Piece::Lit(w.get()),
        APiece::Secret(id, url) => {
            Piece::Secret { id: SecretId(u32::from(*id)), label: format!("${{S{id}}}"), encoding: encoding(*url) }
        }
        APiece::Generated(w, url) => Piece::Generated { name: w.get(), encoding: encoding(*url) },
        APiece::HostPort(w, port) => Piece::HostPort { container: w.get(), port: port.get() },
    }))
}

fn vars(vars: &[(Word, Vec<APiece>)]) -> Vec<(String, Text)> {
    vars.iter().map(|(n, t)| (n.get(), text(t))).collect()
}

#[derive(Arbitrary, Debug)]
enum AConsumer {
    Project,
    Package(Word),
}

impl AConsumer {
    fn get(&self) -> plan::Consumer {
        match self {
            Self::Project => plan::Consumer::Project,
            Self::Package(w) => plan::Consumer::Package(w.get()),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct APackage {
    name: Word,
    source: u8,
    at: Word,
}

impl APackage {
    fn get(&self) -> plan::PythonPackage {
        let at = self.at.get();
        let source = match self.source % 3 {
            0 => plan::PackageSource::Pypi(at),
            1 => plan::PackageSource::Path(at),
            _ => plan::PackageSource::Editable(at),
        };
        plan::PythonPackage { name: self.name.get(), source }
    }
}

#[derive(Arbitrary, Debug)]
struct AExec {
    container: Word,
    command: Vec<Vec<APiece>>,
    env: Vec<(Word, Vec<APiece>)>,
    user: Option<Word>,
}

impl AExec {
    fn get(&self) -> plan::Exec {
        plan::Exec {
            container: self.container.get(),
            command: self.command.iter().map(|t| text(t)).collect(),
            env: vars(&self.env),
            user: self.user.as_ref().map(Word::get),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum AEndpoint {
    ContainerPort(Word, Port),
    Address(Vec<APiece>, Vec<APiece>),
}

impl AEndpoint {
    fn get(&self) -> plan::Endpoint {
        match self {
            Self::ContainerPort(c, p) => plan::Endpoint::ContainerPort { container: c.get(), port: p.get() },
            Self::Address(h, p) => plan::Endpoint::Address { host: text(h), port: text(p) },
        }
    }
}

#[derive(Arbitrary, Debug)]
enum AProbe {
    Tcp(AEndpoint),
    Http { endpoint: AEndpoint, path: Word, tls: bool, status: Option<u16>, headers: Vec<(Word, Vec<APiece>)> },
    Exec(AExec),
}

#[derive(Arbitrary, Debug)]
struct APort {
    container_port: Port,
    udp: bool,
    host_port: Option<Port>,
    host_ip: Word,
}

#[derive(Arbitrary, Debug)]
enum AMount {
    Volume(Word, Word, bool),
    Bind(Word, Word, bool),
}

#[derive(Arbitrary, Debug)]
enum AAction {
    EnsureContainer {
        name: Word,
        image: Word,
        command: Option<Vec<Vec<APiece>>>,
        env: Vec<(Word, Vec<APiece>)>,
        ports: Vec<APort>,
        mounts: Vec<AMount>,
        init: bool,
        stop_signal: Option<Word>,
    },
    Exec(AExec),
    Wait {
        probe: AProbe,
        timeout_ms: u32,
        interval_ms: u32,
    },
    UvInstall(Vec<APackage>),
    WriteFile(Word, String),
}

impl AAction {
    fn get(&self) -> plan::Action {
        match self {
            Self::EnsureContainer { name, image, command, env, ports, mounts, init, stop_signal } => {
                plan::Action::EnsureContainer(plan::Container {
                    name: name.get(),
                    image: image.get(),
                    command: command.as_ref().map(|c| c.iter().map(|t| text(t)).collect()),
                    env: vars(env),
                    ports: ports
                        .iter()
                        .map(|p| plan::Port {
                            container_port: p.container_port.get(),
                            protocol: if p.udp { plan::Protocol::Udp } else { plan::Protocol::Tcp },
                            host_port: p.host_port.as_ref().map(Port::get),
                            host_ip: p.host_ip.get(),
                        })
                        .collect(),
                    mounts: mounts
                        .iter()
                        .map(|m| match m {
                            AMount::Volume(v, t, ro) => {
                                plan::Mount::Volume { volume: v.get(), target: t.get(), read_only: *ro }
                            }
                            AMount::Bind(s, t, ro) => {
                                plan::Mount::Bind { source: s.get(), target: t.get(), read_only: *ro }
                            }
                        })
                        .collect(),
                    restart: plan::RestartPolicy::UnlessStopped,
                    init: *init,
                    stop_signal: stop_signal.as_ref().map(Word::get),
                })
            }
            Self::Exec(e) => plan::Action::Exec(e.get()),
            Self::Wait { probe, timeout_ms, interval_ms } => plan::Action::Wait(plan::Wait {
                probe: match probe {
                    AProbe::Tcp(e) => plan::Probe::Tcp { endpoint: e.get() },
                    AProbe::Http { endpoint, path, tls, status, headers } => plan::Probe::Http {
                        endpoint: endpoint.get(),
                        path: path.get(),
                        tls: *tls,
                        status: *status,
                        headers: vars(headers),
                    },
                    AProbe::Exec(e) => plan::Probe::Exec(e.get()),
                },
                timeout_ms: *timeout_ms,
                interval_ms: *interval_ms,
            }),
            Self::UvInstall(packages) => {
                plan::Action::UvInstall { packages: packages.iter().map(APackage::get).collect() }
            }
            Self::WriteFile(path, contents) => plan::Action::WriteFile(plan::WriteFile {
                plugin: "fuzz".into(),
                path: path.get(),
                contents: contents.clone(),
            }),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    declared: u8,
    granted: u8,
    host_ips: Vec<Word>,
    granted_variables: Vec<Word>,
    declared_variables: Option<Vec<Word>>,
    reviewed: bool,
    consumers: Vec<AConsumer>,
    packages: Vec<APackage>,
    renames: Vec<(AConsumer, Word, Word)>,
    actions: Vec<AAction>,
    env: Vec<(AConsumer, Vec<(Word, Vec<APiece>)>)>,
}

fn capabilities(bits: u8) -> BTreeSet<Capability> {
    Capability::ALL.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, c)| *c).collect()
}

fn printable(r: &Refusal) -> bool {
    !hsm_model::text::needs_escape(&r.action) && !hsm_model::text::needs_escape(&r.reason)
}

fuzz_target!(|input: Input| {
    let info = PluginInfo {
        name: "fuzz".into(),
        version: "0.1.0".into(),
        kinds: vec!["fuzz".into()],
        params: vec![ParamSpec { name: "image".into(), description: "the image".into(), required: false }],
        settings: Vec::new(),
        capabilities: capabilities(input.declared),
        variables: input
            .declared_variables
            .as_ref()
            .map(|vs| vs.iter().map(|v| VariableSpec { name: v.get(), description: String::new() }).collect()),
    };
    let grants = Grants {
        capabilities: capabilities(input.granted),
        host_ips: input.host_ips.iter().map(Word::get).collect(),
        variables: input.granted_variables.iter().map(Word::get).collect(),
        reviewed: input.reviewed,
    };
    let consumers: Vec<plan::Consumer> = input.consumers.iter().map(AConsumer::get).collect();
    let packages: Vec<plan::PythonPackage> = input.packages.iter().map(APackage::get).collect();
    let renames: Vec<Rename> = input
        .renames
        .iter()
        .map(|(c, from, to)| Rename { consumer: c.get(), from: from.get(), to: to.get() })
        .collect();
    let ctx = CheckContext { service: "db", consumers: &consumers, packages: &packages, renames: &renames };
    let planned = PlannedService {
        actions: input.actions.iter().map(AAction::get).collect(),
        env: input.env.iter().map(|(c, vs)| plan::ConsumerEnv { consumer: c.get(), vars: vars(vs) }).collect(),
    };
    let checked = check_plan(&info, &grants, &ctx, &planned);
    match review_plan(&info, &grants, &ctx, &planned) {
        Err(refusal) => {
            assert!(printable(&refusal), "a refusal quotes unprintable text: {refusal:?}");
            assert_eq!(checked, Err(refusal), "check_plan and review_plan disagree");
        }
        Ok(pending) => {
            assert!(pending.iter().all(printable), "a refusal quotes unprintable text: {pending:?}");
            assert_eq!(checked, pending.into_iter().next().map_or(Ok(()), Err), "check_plan and review_plan disagree");
        }
    }
});
