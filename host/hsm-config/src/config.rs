//! The loaded configuration: the project file and every registry, checked and merged
//! by precedence, with every name and value located. Parameter strings are parsed
//! templates here; [`Config::interpolate`] resolves one tree when the resolver decides
//! that the project uses it.

use std::path::PathBuf;

use hsm_model::{Diagnostic, Diagnostics, Piece, SecretStore, Sensitive, Sources, Span, Text, Value};
use indexmap::IndexMap;
use rustc_hash::FxHashMap;

use crate::env::{Environment, required_message};
use crate::file::Mode;
use crate::interp::{ResolveError, Resolved, Template};

/// Everything `hsm.yaml` and its registries say, checked.
#[derive(Debug)]
pub struct Config {
    /// What `hsm.yaml` says.
    pub project: Project,
    /// The registries read, in precedence order (lowest first).
    pub registries: Vec<String>,
    /// Every package the registries define, the later registry's definition winning.
    pub packages: FxHashMap<String, PackageDef>,
    /// Every service the registries define.
    pub services: FxHashMap<String, ServiceDef>,
    /// Every profile the registries define.
    pub profiles: FxHashMap<String, ProfileDef>,
    /// Every third-party plugin declared, by a registry or by `hsm.yaml` (which
    /// wins), in the order declared.
    pub plugins: Vec<PluginDef>,
    /// The variables interpolation reads.
    pub env: Environment,
}

/// A name and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRef {
    /// The name.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// `hsm.yaml`, checked.
#[derive(Debug)]
pub struct Project {
    /// The project's name.
    pub name: NameRef,
    /// The folder that holds `hsm.yaml` (absolute).
    pub dir: PathBuf,
    /// `hsm.yaml` as shown to the user.
    pub display: String,
    /// The default profile, if the project sets one.
    pub profile: Option<NameRef>,
    /// The packages asked for, in order.
    pub packages: Vec<PackageRequest>,
    /// The services configured or asked for directly, in order.
    pub services: Vec<ServiceRequest>,
    /// What the project grants third-party plugins.
    pub grants: Vec<PluginGrant>,
}

/// A third-party plugin's declaration: a component file pinned by its digest.
#[derive(Clone, Debug)]
pub struct PluginDef {
    /// Its name.
    pub name: NameRef,
    /// The component file, joined to the folder of the file that declares it.
    pub path: PathBuf,
    /// The path as written, and where.
    pub written: String,
    /// Where the path was written.
    pub path_span: Span,
    /// The pinned sha256, lowercase hex.
    pub sha256: String,
    /// Where the digest was written.
    pub sha256_span: Span,
    /// The file that declares it, as shown to the user.
    pub declared_in: String,
}

/// What the project grants one third-party plugin, for one digest of it.
#[derive(Clone, Debug)]
pub struct PluginGrant {
    /// The plugin.
    pub name: NameRef,
    /// The digest the grant is for, lowercase hex.
    pub sha256: String,
    /// Where the digest was written.
    pub sha256_span: Span,
    /// The capabilities granted, each with where it was written.
    pub capabilities: Vec<(hsm_model::Capability, Span)>,
    /// Host addresses besides 127.0.0.1 its ports may bind to.
    pub publish_on: Vec<(String, Span)>,
    /// Variables it may set in packages' environments, by name (for plugins that
    /// can't declare them), each with where it was written.
    pub env: Vec<(String, Span)>,
}

/// One entry of `hsm.yaml`'s `packages`.
#[derive(Debug)]
pub struct PackageRequest {
    /// The package's name.
    pub name: NameRef,
    /// For a map entry: the source and implications it gives. Its name is in a
    /// registry: the source overrides the registry's and the implications are added;
    /// otherwise it defines the package.
    pub inline: Option<PackageDef>,
    /// Whether the map entry wrote a source field, even one that was rejected (so a
    /// package whose only source was invalid is not reported as unknown as well).
    pub source_given: bool,
}

/// One entry of `hsm.yaml`'s `services`.
#[derive(Debug)]
pub struct ServiceRequest {
    /// The service's name.
    pub name: NameRef,
    /// The profile chosen for it.
    pub profile: Option<NameRef>,
    /// The params the project asks of it.
    pub params: Params,
}

/// A package definition.
#[derive(Clone, Debug)]
pub struct PackageDef {
    /// Its name.
    pub name: NameRef,
    /// What it is for.
    pub description: Option<String>,
    /// Where it is installed from; `None` for a package that only implies others.
    pub source: Option<SourceDef>,
    /// What it needs.
    pub implies: Vec<Implies>,
    /// Its tasks, in the order written.
    pub tasks: Vec<TaskDef>,
}

/// A package's task.
#[derive(Clone, Debug)]
pub struct TaskDef {
    /// Its name, and where it was written.
    pub name: NameRef,
    /// The program and its arguments.
    pub run: Vec<String>,
    /// Whether it runs only from `hsm task` (else during sync too).
    pub on_demand: bool,
}

/// Where a package is installed from.
#[derive(Clone, Debug)]
pub enum SourceDef {
    /// PyPI, with a PEP 508 requirement.
    Pypi {
        /// The requirement, such as `auth-service>=1.2`.
        requirement: String,
        /// Where it was written.
        span: Span,
    },
    /// A local folder.
    Path {
        /// The folder, joined to the folder of the file that names it (not checked yet).
        path: PathBuf,
        /// The path as written.
        written: String,
        /// Whether uv installs it as an editable link.
        editable: bool,
        /// Where it was written.
        span: Span,
    },
}

impl SourceDef {
    /// Where the source was written.
    pub fn span(&self) -> Span {
        match self {
            Self::Pypi { span, .. } | Self::Path { span, .. } => *span,
        }
    }
}

/// Something a package needs.
#[derive(Clone, Debug)]
pub enum Implies {
    /// A service, with what the package asks of it.
    Service {
        /// The service.
        name: NameRef,
        /// The params.
        params: Params,
        /// Where the implication was written.
        span: Span,
    },
    /// Another package.
    Package {
        /// The package.
        name: NameRef,
        /// Where the implication was written.
        span: Span,
    },
}

/// A service definition.
#[derive(Clone, Debug)]
pub struct ServiceDef {
    /// Its name.
    pub name: NameRef,
    /// Which plugin handles it.
    pub kind: NameRef,
    /// What it is for.
    pub description: Option<String>,
    /// Its default params.
    pub params: Params,
    /// Its default profile.
    pub profile: Option<NameRef>,
}

/// A profile definition.
#[derive(Clone, Debug)]
pub struct ProfileDef {
    /// Its name.
    pub name: NameRef,
    /// Managed or external.
    pub mode: Mode,
    /// What it is for.
    pub description: Option<String>,
    /// Per service: connection settings (external) or param overrides (managed).
    pub services: IndexMap<String, ProfileSettings>,
}

/// What one profile says about one service.
#[derive(Clone, Debug)]
pub struct ProfileSettings {
    /// The service's name as written in the profile.
    pub name: NameRef,
    /// The settings.
    pub params: Params,
}

/// A parameter tree whose strings are templates, with the location of every string.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// The root (a map, or `Null` when nothing was written).
    pub root: ParamNode,
    /// Where the tree was written, if it was.
    pub span: Option<Span>,
    /// Where each of the root map's keys was written, in order: a plugin's
    /// complaint about one setting (`uri` where it reads `url`) points at it.
    pub keys: Vec<(String, Span)>,
}

/// A node of a [`Params`] tree.
#[derive(Clone, Debug, Default)]
pub enum ParamNode {
    /// Nothing.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string, parsed.
    Str(StrParam),
    /// A sequence.
    List(Vec<ParamNode>),
    /// A mapping, in the order written (its keys are unique: the YAML loader
    /// refuses a key given twice). A list, not a hash map: maps of params are
    /// small and only ever walked in order, and a large registry holds tens of
    /// thousands of them.
    Map(Vec<(String, ParamNode)>),
}

/// A string in a parameter tree.
#[derive(Clone, Debug)]
pub struct StrParam {
    /// The parsed template.
    pub template: Template,
    /// The whole scalar in the file.
    pub span: Span,
    /// Byte offset in the file where the string's text starts, when offsets in the
    /// string map one to one onto the file (no escapes, one line).
    pub exact_start: Option<usize>,
}

impl StrParam {
    /// The span of `len` bytes at `offset` in the string, or the whole scalar when the
    /// string's offsets do not map onto the file.
    pub fn sub_span(&self, sources: &Sources, offset: usize, len: usize) -> Span {
        match self.exact_start {
            Some(start) => Span::from_range(self.span.file, &sources.get(self.span.file).text, start + offset, len),
            None => self.span,
        }
    }
}

impl Params {
    /// Where the root map's key `key` was written.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, span)| *span)
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        match &self.root {
            ParamNode::Null => true,
            ParamNode::Map(m) => m.is_empty(),
            _ => false,
        }
    }
}

impl Config {
    /// Resolves a parameter tree: every `$` expression becomes a [`Piece::Secret`]
    /// whose value goes to `secrets` and nowhere else. Every failure is reported.
    pub fn interpolate(
        &self,
        params: &Params,
        sources: &Sources,
        secrets: &mut SecretStore,
    ) -> Result<Value, Diagnostics> {
        let mut diags = Diagnostics::default();
        let value = match &params.root {
            ParamNode::Null => Value::map(),
            root => self.node(root, sources, secrets, &mut diags),
        };
        diags.into_result(value)
    }

    fn node(&self, node: &ParamNode, sources: &Sources, secrets: &mut SecretStore, diags: &mut Diagnostics) -> Value {
        match node {
            ParamNode::Null => Value::Null,
            ParamNode::Bool(b) => Value::Bool(*b),
            ParamNode::Int(i) => Value::Int(*i),
            ParamNode::Float(f) => Value::Float(*f),
            ParamNode::Str(s) => match self.string(s, sources, secrets) {
                Ok(t) => Value::Text(t),
                Err(d) => {
                    diags.push(*d);
                    Value::Null
                }
            },
            ParamNode::List(items) => {
                Value::List(items.iter().map(|i| self.node(i, sources, secrets, diags)).collect())
            }
            ParamNode::Map(m) => {
                Value::Map(m.iter().map(|(k, v)| (k.clone(), self.node(v, sources, secrets, diags))).collect())
            }
        }
    }

    /// Resolves one string.
    pub fn string(&self, s: &StrParam, sources: &Sources, secrets: &mut SecretStore) -> Result<Text, Box<Diagnostic>> {
        if let Some(plain) = s.template.is_literal().then(|| s.template.resolve_string(&NoVars)) {
            return Ok(Text::literal(plain.unwrap_or_default()));
        }
        let parts = s.template.resolve(&self.env).map_err(|e| match e {
            ResolveError::Lookup(d) => d,
            ResolveError::Unset { name, start, len } => Box::new(
                Diagnostic::new(format!("variable `{name}` is not set"))
                    .at(s.sub_span(sources, start, len), self.env.searched())
                    .hint(format!(
                        "set `{name}` in the environment or in `.env`, or give a default: `${{{name}:-value}}`"
                    )),
            ),
            ResolveError::Required { name, message, empty, start, len } => {
                let label = if empty { "set but empty".to_string() } else { self.env.searched() };
                Box::new(
                    Diagnostic::new(required_message(&name, &message, empty))
                        .at(s.sub_span(sources, start, len), label),
                )
            }
        })?;
        let mut text = Text::default();
        for p in parts {
            match p {
                Resolved::Lit(l) => text.push(Piece::Lit(l)),
                Resolved::Expr { label, value } => {
                    let id = secrets.insert(Sensitive::new(value));
                    text.push(Piece::Secret { id, label, encoding: hsm_model::Encoding::Raw });
                }
            }
        }
        Ok(text)
    }
}

struct NoVars;

impl crate::interp::Lookup for NoVars {
    type Error = std::convert::Infallible;
    fn lookup(&self, _: &str) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }
}
