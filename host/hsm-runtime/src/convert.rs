//! Conversions between hsm's own types and the WIT types. Going in, secrets become
//! per-call handles; coming out, everything a plugin returns is validated (handles
//! it was given, well-formed trees, names) and counted against the output limit.
//! Requests and trees differ between WIT versions (0.2.0's trees are encoded bytes,
//! see [`tree`]); what plugins return otherwise has the same types in both.

mod tree;

use std::collections::BTreeSet;
use std::ops::Range;

use hsm_model::text::Encoding;
use hsm_model::{Piece, SecretId, Text, Value};
use hsm_plan as plan;
use indexmap::IndexMap;

use crate::bindings::v0_1::hsm::plugin::types as w;
use crate::bindings::v0_2::hsm::plugin::requests as w2;
use crate::host::{
    CallErrorKind, Capability, MergeFailure, MergeInput, ParamSpec, PlanInput, PlannedService, PluginInfo,
};

/// The secrets handed to a plugin in one call, by handle.
#[derive(Default)]
pub(crate) struct Handles {
    secrets: Vec<(SecretId, String)>,
}

impl Handles {
    fn handle(&mut self, id: SecretId, label: &str) -> u32 {
        if let Some(i) = self.secrets.iter().position(|(s, _)| *s == id) {
            return i as u32;
        }
        self.secrets.push((id, label.to_string()));
        (self.secrets.len() - 1) as u32
    }

    fn get(&self, handle: u32) -> Option<&(SecretId, String)> {
        self.secrets.get(handle as usize)
    }
}

/// Counts what a plugin returns against the output limit.
pub(crate) struct Budget {
    used: usize,
    limit: usize,
}

/// What one node, piece or list entry costs besides its strings.
const OVERHEAD: usize = 16;

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self { used: 0, limit }
    }

    fn take(&mut self, n: usize) -> Result<(), CallErrorKind> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit { Err(CallErrorKind::TooLarge(self.limit)) } else { Ok(()) }
    }

    pub(crate) fn take_str(&mut self, s: &str) -> Result<(), CallErrorKind> {
        self.take(s.len() + OVERHEAD)
    }
}

/// A plugin's words, safe to print: control characters (terminal escapes among
/// them) shown as escapes instead of acted on.
pub(crate) fn printable(s: &str) -> String {
    hsm_model::text::printable(s).into_owned()
}

/// A message or key a plugin wrote, as hsm quotes it: printable, and at most
/// [`MAX_WORDS`] characters (a message is a line, not a page).
pub(crate) fn plugin_words(s: &str) -> String {
    let shown = printable(s);
    match shown.char_indices().nth(MAX_WORDS) {
        Some((end, _)) => format!("{}…", &shown[..end]),
        None => shown,
    }
}

/// The longest message of a plugin's that hsm quotes whole.
const MAX_WORDS: usize = 1000;

fn malformed(message: impl Into<String>) -> CallErrorKind {
    CallErrorKind::Malformed(message.into())
}

// ---- into the plugin ----

fn encoding_to_wit(e: Encoding) -> w::Encoding {
    match e {
        Encoding::Raw => w::Encoding::Raw,
        Encoding::Url => w::Encoding::Url,
    }
}

/// A request's trees in the borrowed form the bindings lower without copying: every
/// string stays the caller's own, and the nodes, list children, map entries and text
/// pieces of all the request's trees live in four flat buffers. Trees are added
/// first ([`Trees::add`]); [`Trees::nodes`] then lays out the nodes that
/// [`Trees::tree`] hands out.
#[derive(Default)]
pub(crate) struct Trees<'a> {
    nodes: Vec<Proto>,
    children: Vec<u32>,
    entries: Vec<(&'a str, u32)>,
    pieces: Vec<w::PieceParam<'a>>,
}

/// A node whose lists are ranges of the [`Trees`]' buffers.
enum Proto {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Range<usize>),
    List(Range<usize>),
    Map(Range<usize>),
}

/// One tree of a [`Trees`]: its nodes' range.
pub(crate) struct TreeRef(Range<usize>);

impl<'a> Trees<'a> {
    /// Adds a value as a tree (node 0 its root, children after their parent);
    /// secrets become handles.
    pub(crate) fn add(&mut self, v: &'a Value, handles: &mut Handles) -> TreeRef {
        let base = self.nodes.len();
        self.push(base, v, handles);
        TreeRef(base..self.nodes.len())
    }

    /// Pushes `v` and its descendants; returns its index in its tree.
    fn push(&mut self, base: usize, v: &'a Value, handles: &mut Handles) -> u32 {
        let index = self.nodes.len();
        self.nodes.push(Proto::Null);
        let node = match v {
            Value::Null => Proto::Null,
            Value::Bool(b) => Proto::Bool(*b),
            Value::Int(i) => Proto::Int(*i),
            Value::Float(f) => Proto::Float(*f),
            Value::Text(t) => {
                let start = self.pieces.len();
                self.pieces.extend(t.pieces().iter().map(|p| piece_to_wit(p, handles)));
                Proto::Text(start..self.pieces.len())
            }
            // Each child's slot is taken before the child pushes its own.
            Value::List(items) => {
                let start = self.children.len();
                self.children.resize(start + items.len(), 0);
                for (k, item) in items.iter().enumerate() {
                    self.children[start + k] = self.push(base, item, handles);
                }
                Proto::List(start..start + items.len())
            }
            Value::Map(m) => {
                let start = self.entries.len();
                self.entries.resize(start + m.len(), ("", 0));
                for (k, (key, item)) in m.iter().enumerate() {
                    self.entries[start + k] = (key.as_str(), self.push(base, item, handles));
                }
                Proto::Map(start..start + m.len())
            }
        };
        self.nodes[index] = node;
        (index - base) as u32
    }

    /// Every tree's nodes, laid out for [`Trees::tree`].
    pub(crate) fn nodes(&self) -> Vec<w::NodeParam<'_>> {
        self.nodes
            .iter()
            .map(|p| match p {
                Proto::Null => w::NodeParam::Null,
                Proto::Bool(b) => w::NodeParam::Boolean(*b),
                Proto::Int(i) => w::NodeParam::Integer(*i),
                Proto::Float(f) => w::NodeParam::Float(*f),
                Proto::Text(r) => w::NodeParam::Text(w::TextParam { pieces: &self.pieces[r.clone()] }),
                Proto::List(r) => w::NodeParam::List(&self.children[r.clone()]),
                Proto::Map(r) => w::NodeParam::Map(&self.entries[r.clone()]),
            })
            .collect()
    }

    /// A tree added earlier, from the laid-out `nodes`.
    pub(crate) fn tree<'n>(nodes: &'n [w::NodeParam<'n>], tree: &TreeRef) -> w::TreeParam<'n> {
        w::TreeParam { nodes: &nodes[tree.0.clone()] }
    }
}

fn piece_to_wit<'a>(p: &'a Piece, handles: &mut Handles) -> w::PieceParam<'a> {
    match p {
        Piece::Lit(s) => w::PieceParam::Lit(s),
        Piece::Secret { id, label, encoding } => w::PieceParam::Secret(w::SecretUse {
            handle: handles.handle(*id, label),
            encoding: encoding_to_wit(*encoding),
        }),
        Piece::Generated { name, encoding } => {
            w::PieceParam::Generated(w::GeneratedUseParam { name, encoding: encoding_to_wit(*encoding) })
        }
        Piece::HostPort { container, port } => w::PieceParam::HostPort(w::PortRefParam { container, port: *port }),
    }
}

fn requester_to_wit(c: &plan::Consumer) -> w::Requester<'_> {
    match c {
        plan::Consumer::Project => w::Requester::Project,
        plan::Consumer::Package(p) => w::Requester::Package(p),
    }
}

/// A merge request's trees: the defaults, and each contribution's params.
pub(crate) fn merge_trees<'a>(input: &'a MergeInput<'_>, handles: &mut Handles) -> (Trees<'a>, TreeRef, Vec<TreeRef>) {
    let mut trees = Trees::default();
    let defaults = trees.add(input.defaults, handles);
    let params = input.contributions.iter().map(|c| trees.add(c.params, handles)).collect();
    (trees, defaults, params)
}

/// A merge request's contributions, with their trees (from [`merge_trees`]) laid out.
pub(crate) fn contributions_to_wit<'a>(
    input: &'a MergeInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    params: &[TreeRef],
) -> Vec<w::Contribution<'a>> {
    let contributions = input.contributions.iter().zip(params);
    contributions
        .map(|(c, tree)| w::Contribution {
            from: requester_to_wit(&c.from),
            origin: &c.origin,
            params: Trees::tree(nodes, tree),
        })
        .collect()
}

/// The merge request, with its trees (from [`merge_trees`]) laid out.
pub(crate) fn merge_request_to_wit<'a>(
    input: &'a MergeInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    defaults: &TreeRef,
    contributions: &'a [w::Contribution<'a>],
) -> w::MergeRequest<'a> {
    w::MergeRequest { service: input.service, kind: input.kind, defaults: Trees::tree(nodes, defaults), contributions }
}

/// A plan request's trees: the config and the profile's settings, and each
/// consumer's params.
pub(crate) fn plan_trees<'a>(
    input: &'a PlanInput<'_>,
    handles: &mut Handles,
) -> (Trees<'a>, [TreeRef; 2], Vec<TreeRef>) {
    let mut trees = Trees::default();
    let own = [trees.add(input.config, handles), trees.add(input.profile.settings, handles)];
    let params = input.consumers.iter().map(|c| trees.add(c.params, handles)).collect();
    (trees, own, params)
}

/// A plan request's consumers, with their trees (from [`plan_trees`]) laid out.
pub(crate) fn consumers_to_wit<'a>(
    input: &'a PlanInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    params: &[TreeRef],
) -> Vec<w::Consumer<'a>> {
    let consumers = input.consumers.iter().zip(params);
    consumers.map(|(c, tree)| w::Consumer { package: c.consumer.package(), params: Trees::tree(nodes, tree) }).collect()
}

/// The plan request, with its trees (from [`plan_trees`]) laid out.
pub(crate) fn plan_request_to_wit<'a>(
    input: &'a PlanInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    [config, settings]: &[TreeRef; 2],
    consumers: &'a [w::Consumer<'a>],
) -> w::PlanRequest<'a> {
    w::PlanRequest {
        project: input.project,
        service: input.service,
        kind: input.kind,
        config: Trees::tree(nodes, config),
        profile: w::Profile {
            name: input.profile.name,
            mode: mode_to_wit(input.profile.mode),
            settings: Trees::tree(nodes, settings),
        },
        consumers,
        host_address: input.host_address,
    }
}

/// Builds a 0.2.0 merge request, every tree encoded into one buffer, and hands it
/// to `call`.
pub(crate) fn with_merge_request<R>(
    input: &MergeInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w2::MergeRequest<'_>) -> R,
) -> R {
    let mut bytes = Vec::new();
    let defaults = tree::encode(input.defaults, handles, &mut bytes);
    let params: Vec<_> = input.contributions.iter().map(|c| tree::encode(c.params, handles, &mut bytes)).collect();
    let contributions: Vec<_> = (input.contributions.iter().zip(params))
        .map(|(c, range)| w2::Contribution {
            from: requester_to_wit(&c.from),
            origin: &c.origin,
            params: &bytes[range],
        })
        .collect();
    call(w2::MergeRequest {
        service: input.service,
        kind: input.kind,
        defaults: &bytes[defaults],
        contributions: &contributions,
    })
}

/// Builds a 0.2.0 plan request, every tree encoded into one buffer, and hands it
/// to `call`.
pub(crate) fn with_plan_request<R>(
    input: &PlanInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w2::PlanRequest<'_>) -> R,
) -> R {
    let mut bytes = Vec::new();
    let config = tree::encode(input.config, handles, &mut bytes);
    let settings = tree::encode(input.profile.settings, handles, &mut bytes);
    let params: Vec<_> = input.consumers.iter().map(|c| tree::encode(c.params, handles, &mut bytes)).collect();
    let consumers: Vec<_> = (input.consumers.iter().zip(params))
        .map(|(c, range)| w2::Consumer { package: c.consumer.package(), params: &bytes[range] })
        .collect();
    call(w2::PlanRequest {
        project: input.project,
        service: input.service,
        kind: input.kind,
        config: &bytes[config],
        profile: w2::Profile {
            name: input.profile.name,
            mode: mode_to_wit(input.profile.mode),
            settings: &bytes[settings],
        },
        consumers: &consumers,
        host_address: input.host_address,
    })
}

fn mode_to_wit(mode: plan::Mode) -> w::Mode {
    match mode {
        plan::Mode::Managed => w::Mode::Managed,
        plan::Mode::External => w::Mode::External,
    }
}

// ---- out of the plugin ----

pub(crate) use tree::decode as decode_tree;

/// A host-port reference's container: a name as `ensure-container` takes one (the
/// plan's check says whether it is one of the service's own; in a merged
/// configuration, this is the only check).
pub(crate) fn container_name(name: String) -> Result<String, CallErrorKind> {
    if is_name(&name, 64) {
        Ok(name)
    } else {
        Err(malformed(format!(
            "host-port reference to container `{}`, which is not lowercase letters, digits and `-`",
            name.escape_debug()
        )))
    }
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A plugin's self-description, checked: names and kinds are names, every text is
/// printable (no terminal escapes when `hsm plugin check` shows it) and it all fits
/// the output budget.
pub(crate) fn info_from_wit(info: w::PluginInfo, budget: &mut Budget) -> Result<PluginInfo, String> {
    let mut texts: Vec<&str> = vec![&info.name, &info.version];
    texts.extend(info.kinds.iter().map(String::as_str));
    for spec in info.params.iter().chain(&info.settings) {
        texts.push(&spec.name);
        texts.push(&spec.description);
    }
    for text in texts {
        budget.take_str(text).map_err(|e| e.to_string())?;
        if hsm_model::text::needs_escape(text) {
            return Err(format!("`{}` holds control or invisible characters", text.escape_debug()));
        }
    }
    if !is_name(&info.name, 64) {
        return Err(format!("its name `{}` is not lowercase letters, digits and `-`", info.name.escape_debug()));
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return Err("it gives no version".into());
    }
    if info.kinds.is_empty() {
        return Err("it serves no service kind".into());
    }
    for kind in &info.kinds {
        if !is_name(kind, 64) {
            return Err(format!("its kind `{}` is not lowercase letters, digits and `-`", kind.escape_debug()));
        }
    }
    let specs = |specs: Vec<w::ParamSpec>| {
        specs
            .into_iter()
            .map(|s| ParamSpec { name: s.name, description: s.description, required: s.required })
            .collect()
    };
    let capabilities: BTreeSet<Capability> = info
        .capabilities
        .into_iter()
        .map(|c| match c {
            w::Capability::Containers => Capability::Containers,
            w::Capability::Exec => Capability::Exec,
            w::Capability::UvInstall => Capability::UvInstall,
            w::Capability::Files => Capability::Files,
            w::Capability::NetworkProbe => Capability::NetworkProbe,
        })
        .collect();
    Ok(PluginInfo {
        name: info.name,
        version: info.version,
        kinds: info.kinds,
        params: specs(info.params),
        settings: specs(info.settings),
        capabilities,
        variables: None,
    })
}

/// The variables a 0.3.0 plugin declares (name, description), checked as its other
/// declarations are: names hsm accepts, in none of the families no plugin may set,
/// each once, with one-line printable descriptions.
pub(crate) fn variables_from_wit(
    variables: Vec<(String, String)>,
    budget: &mut Budget,
) -> Result<Vec<crate::VariableSpec>, String> {
    const MAX_VARIABLES: usize = 256;
    if variables.len() > MAX_VARIABLES {
        return Err(format!("it declares {} variables; at most {MAX_VARIABLES} are allowed", variables.len()));
    }
    let mut out: Vec<crate::VariableSpec> = Vec::with_capacity(variables.len());
    for (name, description) in variables {
        budget.take_str(&name).map_err(|e| e.to_string())?;
        budget.take_str(&description).map_err(|e| e.to_string())?;
        if !crate::env_rules::is_env_name(&name) {
            return Err(format!("it declares `{}`, which is not a variable name", name.escape_debug()));
        }
        if let Some(why) = crate::env_rules::refused_name(&name) {
            return Err(format!("it declares variable {why}"));
        }
        if description.chars().any(char::is_control) || hsm_model::text::needs_escape(&description) {
            return Err(format!("the description of `{name}` holds control characters"));
        }
        if out.iter().any(|v| v.name == name) {
            return Err(format!("it declares variable `{name}` twice"));
        }
        out.push(crate::VariableSpec { name, description });
    }
    Ok(out)
}

fn encoding_from_wit(e: w::Encoding) -> Encoding {
    match e {
        w::Encoding::Raw => Encoding::Raw,
        w::Encoding::Url => Encoding::Url,
    }
}

fn text_from_wit(t: w::TextResult, handles: &Handles, budget: &mut Budget) -> Result<Text, CallErrorKind> {
    let mut out = Text::default();
    for piece in t.pieces {
        out.push(match piece {
            w::PieceResult::Lit(s) => {
                budget.take_str(&s)?;
                Piece::Lit(s)
            }
            w::PieceResult::Secret(s) => {
                budget.take(OVERHEAD)?;
                let (id, label) = handles
                    .get(s.handle)
                    .ok_or_else(|| malformed(format!("secret handle {} was not given to it in this call", s.handle)))?;
                Piece::Secret { id: *id, label: label.clone(), encoding: encoding_from_wit(s.encoding) }
            }
            w::PieceResult::Generated(g) => {
                budget.take_str(&g.name)?;
                if !is_name(&g.name, 64) {
                    return Err(malformed(format!(
                        "generated secret name `{}` is not lowercase letters, digits and `-`",
                        g.name.escape_debug()
                    )));
                }
                Piece::Generated { name: g.name, encoding: encoding_from_wit(g.encoding) }
            }
            w::PieceResult::HostPort(p) => {
                budget.take_str(&p.container)?;
                Piece::HostPort { container: container_name(p.container)?, port: p.port }
            }
        });
    }
    Ok(out)
}

/// Rebuilds a tree, refusing what a well-behaved plugin never sends: indices out of
/// range or pointing backwards (cycles), a node used twice (exponential blow-up),
/// nesting deeper than 64.
pub(crate) fn tree_from_wit(
    tree: w::TreeResult,
    handles: &Handles,
    budget: &mut Budget,
) -> Result<Value, CallErrorKind> {
    budget.take(tree.nodes.len().saturating_mul(OVERHEAD))?;
    let mut nodes: Vec<Option<w::NodeResult>> = tree.nodes.into_iter().map(Some).collect();
    if nodes.is_empty() {
        return Ok(Value::Null);
    }
    fn build(
        nodes: &mut [Option<w::NodeResult>],
        index: u32,
        parent: Option<u32>,
        depth: u32,
        handles: &Handles,
        budget: &mut Budget,
    ) -> Result<Value, CallErrorKind> {
        if depth > 64 {
            return Err(malformed("a value is nested deeper than 64 levels"));
        }
        if parent.is_some_and(|p| index <= p) {
            return Err(malformed(format!("tree node {index} comes before its parent")));
        }
        let node = nodes
            .get_mut(index as usize)
            .ok_or_else(|| malformed(format!("tree node {index} does not exist")))?
            .take()
            .ok_or_else(|| malformed(format!("tree node {index} is used twice")))?;
        Ok(match node {
            w::NodeResult::Null => Value::Null,
            w::NodeResult::Boolean(b) => Value::Bool(b),
            w::NodeResult::Integer(i) => Value::Int(i),
            w::NodeResult::Float(f) => Value::Float(f),
            w::NodeResult::Text(t) => Value::Text(text_from_wit(t, handles, budget)?),
            w::NodeResult::List(children) => Value::List(
                children
                    .into_iter()
                    .map(|c| build(nodes, c, Some(index), depth + 1, handles, budget))
                    .collect::<Result<_, _>>()?,
            ),
            w::NodeResult::Map(entries) => {
                let mut map = IndexMap::new();
                for (key, child) in entries {
                    budget.take_str(&key)?;
                    let value = build(nodes, child, Some(index), depth + 1, handles, budget)?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(malformed(format!("key `{}` appears twice in a map", key.escape_debug())));
                    }
                }
                Value::Map(map)
            }
        })
    }
    build(&mut nodes, 0, None, 0, handles, budget)
}

pub(crate) fn merge_error_from_wit(
    e: w::MergeError,
    contributions: usize,
    budget: &mut Budget,
) -> Result<MergeFailure, CallErrorKind> {
    let index = |i: u32| {
        let i = i as usize;
        if i < contributions { Ok(i) } else { Err(malformed(format!("contribution {i} does not exist"))) }
    };
    Ok(match e {
        w::MergeError::Conflict(c) => {
            budget.take_str(&c.message)?;
            budget.take_str(&c.key)?;
            MergeFailure::Conflict {
                message: plugin_words(&c.message),
                key: plugin_words(&c.key),
                contributions: c.contributions.into_iter().map(index).collect::<Result<_, _>>()?,
            }
        }
        w::MergeError::Invalid(i) => {
            budget.take_str(&i.message)?;
            budget.take_str(&i.key)?;
            MergeFailure::Invalid {
                message: plugin_words(&i.message),
                key: plugin_words(&i.key),
                contribution: i.contribution.map(index).transpose()?,
            }
        }
    })
}

struct Out<'a> {
    handles: &'a Handles,
    budget: &'a mut Budget,
}

impl Out<'_> {
    fn text(&mut self, t: w::TextResult) -> Result<Text, CallErrorKind> {
        text_from_wit(t, self.handles, self.budget)
    }

    fn string(&mut self, s: String) -> Result<String, CallErrorKind> {
        self.budget.take_str(&s)?;
        Ok(s)
    }

    fn texts(&mut self, ts: Vec<w::TextResult>) -> Result<Vec<Text>, CallErrorKind> {
        ts.into_iter().map(|t| self.text(t)).collect()
    }

    fn vars(&mut self, vars: Vec<w::EnvVar>) -> Result<Vec<(String, Text)>, CallErrorKind> {
        vars.into_iter().map(|v| Ok((self.string(v.name)?, self.text(v.value)?))).collect()
    }

    fn exec(&mut self, e: w::Exec) -> Result<plan::Exec, CallErrorKind> {
        Ok(plan::Exec {
            container: self.string(e.container)?,
            command: self.texts(e.command)?,
            env: self.vars(e.env)?,
            user: e.user.map(|u| self.string(u)).transpose()?,
        })
    }

    fn endpoint(&mut self, e: w::Endpoint) -> Result<plan::Endpoint, CallErrorKind> {
        Ok(match e {
            w::Endpoint::ContainerPort(p) => {
                plan::Endpoint::ContainerPort { container: self.string(p.container)?, port: p.port }
            }
            w::Endpoint::Address(a) => plan::Endpoint::Address { host: self.text(a.host)?, port: self.text(a.port)? },
        })
    }

    fn container(&mut self, c: w::Container) -> Result<plan::Container, CallErrorKind> {
        Ok(plan::Container {
            name: self.string(c.name)?,
            image: self.string(c.image)?,
            command: c.command.map(|c| self.texts(c)).transpose()?,
            env: self.vars(c.env)?,
            ports: c
                .ports
                .into_iter()
                .map(|p| {
                    Ok(plan::Port {
                        container_port: p.container_port,
                        protocol: match p.protocol {
                            w::Protocol::Tcp => plan::Protocol::Tcp,
                            w::Protocol::Udp => plan::Protocol::Udp,
                        },
                        host_port: p.host_port,
                        host_ip: self.string(p.host_ip.unwrap_or_else(|| "127.0.0.1".into()))?,
                    })
                })
                .collect::<Result<_, CallErrorKind>>()?,
            mounts: c
                .mounts
                .into_iter()
                .map(|m| {
                    Ok(match m {
                        w::Mount::Volume(v) => plan::Mount::Volume {
                            volume: self.string(v.volume)?,
                            target: self.string(v.target)?,
                            read_only: v.read_only,
                        },
                        w::Mount::Bind(b) => plan::Mount::Bind {
                            source: self.string(b.source)?,
                            target: self.string(b.target)?,
                            read_only: b.read_only,
                        },
                    })
                })
                .collect::<Result<_, CallErrorKind>>()?,
            restart: match c.restart {
                w::RestartPolicy::No => plan::RestartPolicy::No,
                w::RestartPolicy::OnFailure => plan::RestartPolicy::OnFailure,
                w::RestartPolicy::UnlessStopped => plan::RestartPolicy::UnlessStopped,
                w::RestartPolicy::Always => plan::RestartPolicy::Always,
            },
        })
    }

    fn action(&mut self, a: w::Action, plugin: &str) -> Result<plan::Action, CallErrorKind> {
        self.budget.take(OVERHEAD)?;
        Ok(match a {
            w::Action::EnsureContainer(c) => plan::Action::EnsureContainer(self.container(c)?),
            w::Action::Exec(e) => plan::Action::Exec(self.exec(e)?),
            w::Action::Wait(wait) => plan::Action::Wait(plan::Wait {
                probe: match wait.probe {
                    w::Probe::Tcp(e) => plan::Probe::Tcp { endpoint: self.endpoint(e)? },
                    w::Probe::Http(h) => plan::Probe::Http {
                        endpoint: self.endpoint(h.endpoint)?,
                        path: self.string(h.path)?,
                        tls: h.tls,
                        status: h.status,
                        headers: self.vars(h.headers)?,
                    },
                    w::Probe::Exec(e) => plan::Probe::Exec(self.exec(e)?),
                },
                timeout_ms: wait.timeout_ms,
                interval_ms: wait.interval_ms,
            }),
            w::Action::UvInstall(packages) => plan::Action::UvInstall {
                packages: packages
                    .into_iter()
                    .map(|p| {
                        Ok(plan::PythonPackage {
                            name: self.string(p.name)?,
                            source: match p.source {
                                w::PackageSource::Pypi(s) => plan::PackageSource::Pypi(self.string(s)?),
                                w::PackageSource::Path(s) => plan::PackageSource::Path(self.string(s)?),
                                w::PackageSource::Editable(s) => plan::PackageSource::Editable(self.string(s)?),
                            },
                        })
                    })
                    .collect::<Result<_, CallErrorKind>>()?,
            },
            w::Action::WriteFile(f) => plan::Action::WriteFile(plan::WriteFile {
                plugin: plugin.to_string(),
                path: self.string(f.path)?,
                contents: self.string(f.contents)?,
            }),
        })
    }
}

pub(crate) fn plan_from_wit(
    p: w::ServicePlan,
    handles: &Handles,
    budget: &mut Budget,
    plugin: &str,
) -> Result<PlannedService, CallErrorKind> {
    let mut out = Out { handles, budget };
    let actions = p.actions.into_iter().map(|a| out.action(a, plugin)).collect::<Result<_, _>>()?;
    let env = p
        .env
        .into_iter()
        .map(|e| {
            Ok(plan::ConsumerEnv {
                consumer: match e.package {
                    None => plan::Consumer::Project,
                    Some(p) => plan::Consumer::Package(out.string(p)?),
                },
                vars: out.vars(e.vars)?,
            })
        })
        .collect::<Result<_, CallErrorKind>>()?;
    Ok(PlannedService { actions, env })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_model::{SecretStore, Sensitive};

    #[test]
    fn values_cross_with_secrets_as_handles() {
        let mut store = SecretStore::new();
        let id = store.insert(Sensitive::new("hunter2".into()));
        let value = Value::Map(IndexMap::from([
            (
                "password".to_string(),
                Value::Text(Text::from_pieces([Piece::Secret { id, label: "${P}".into(), encoding: Encoding::Raw }])),
            ),
            ("ports".to_string(), Value::List(vec![Value::Int(1), Value::Bool(true)])),
        ]));
        let mut handles = Handles::default();
        let mut trees = Trees::default();
        // Another tree first, nested, with a map, an empty map and the same secret:
        // each tree's indices are its own, and the buffers are shared.
        let secret = Value::Text(Text::from_pieces([
            Piece::Lit("a".into()),
            Piece::Secret { id, label: "${P}".into(), encoding: Encoding::Url },
        ]));
        let other = Value::List(vec![
            Value::from("x"),
            Value::Map(IndexMap::from([
                ("inner".to_string(), Value::List(vec![Value::List(vec![Value::Int(2)]), Value::Map(IndexMap::new())])),
                ("secret".to_string(), secret),
            ])),
            Value::Null,
        ]);
        let (before, tree) = (trees.add(&other, &mut handles), trees.add(&value, &mut handles));
        let nodes = trees.nodes();
        let tree = Trees::tree(&nodes, &tree);
        assert!(!format!("{tree:?}").contains("hunter2"));
        let mut budget = Budget::new(1 << 20);
        assert_eq!(tree_from_wit(owned(tree), &handles, &mut budget).unwrap(), value);
        let before = Trees::tree(&nodes, &before);
        assert_eq!(tree_from_wit(owned(before), &handles, &mut budget).unwrap(), other);
        assert_eq!(handles.secrets.len(), 1, "one handle for the one secret");
    }

    /// What a plugin that echoes a tree returns.
    fn owned(tree: w::TreeParam<'_>) -> w::TreeResult {
        let text = |t: &w::TextParam<'_>| w::TextResult {
            pieces: t
                .pieces
                .iter()
                .map(|p| match p {
                    w::PieceParam::Lit(s) => w::PieceResult::Lit(s.to_string()),
                    w::PieceParam::Secret(s) => w::PieceResult::Secret(*s),
                    w::PieceParam::Generated(g) => {
                        w::PieceResult::Generated(w::GeneratedUseResult { name: g.name.into(), encoding: g.encoding })
                    }
                    w::PieceParam::HostPort(p) => {
                        w::PieceResult::HostPort(w::PortRefResult { container: p.container.into(), port: p.port })
                    }
                })
                .collect(),
        };
        let nodes = tree.nodes.iter().map(|n| match n {
            w::NodeParam::Null => w::NodeResult::Null,
            w::NodeParam::Boolean(b) => w::NodeResult::Boolean(*b),
            w::NodeParam::Integer(i) => w::NodeResult::Integer(*i),
            w::NodeParam::Float(f) => w::NodeResult::Float(*f),
            w::NodeParam::Text(t) => w::NodeResult::Text(text(t)),
            w::NodeParam::List(c) => w::NodeResult::List(c.to_vec()),
            w::NodeParam::Map(e) => w::NodeResult::Map(e.iter().map(|(k, i)| (k.to_string(), *i)).collect()),
        });
        w::TreeResult { nodes: nodes.collect() }
    }

    #[test]
    fn malformed_trees_are_refused() {
        let handles = Handles::default();
        let check =
            |nodes: Vec<w::NodeResult>| tree_from_wit(w::TreeResult { nodes }, &handles, &mut Budget::new(1 << 20));
        assert_eq!(check(vec![w::NodeResult::List(vec![0])]), Err(malformed("tree node 0 comes before its parent")));
        assert_eq!(check(vec![w::NodeResult::List(vec![5])]), Err(malformed("tree node 5 does not exist")));
        assert_eq!(
            check(vec![w::NodeResult::List(vec![1, 1]), w::NodeResult::Null]),
            Err(malformed("tree node 1 is used twice"))
        );
        let forged = w::TextResult {
            pieces: vec![w::PieceResult::Secret(w::SecretUse { handle: 7, encoding: w::Encoding::Raw })],
        };
        assert_eq!(
            check(vec![w::NodeResult::Text(forged)]),
            Err(malformed("secret handle 7 was not given to it in this call"))
        );
        let deep: Vec<w::NodeResult> =
            (0..70).map(|i| w::NodeResult::List(if i < 69 { vec![i + 1] } else { vec![] })).collect();
        assert_eq!(check(deep), Err(malformed("a value is nested deeper than 64 levels")));
    }

    #[test]
    fn output_beyond_the_budget_is_refused() {
        let handles = Handles::default();
        let big = w::NodeResult::Text(w::TextResult { pieces: vec![w::PieceResult::Lit("x".repeat(2000))] });
        assert_eq!(
            tree_from_wit(w::TreeResult { nodes: vec![big] }, &handles, &mut Budget::new(1024)),
            Err(CallErrorKind::TooLarge(1024))
        );
    }
}
