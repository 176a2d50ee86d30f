//! The two file formats as serde structs: `hsm.yaml` ([`ProjectFile`]) and registry
//! files ([`RegistryFile`]). These types are the single source of truth: they parse
//! the files (rejecting unknown fields), and `hsm schema` derives the JSON Schema from
//! them. They keep every location; [`crate::load()`] turns them into the checked,
//! merged [`crate::Config`].

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::names::{KindName, PackageName, PluginName, ProfileName, ProjectName, ServiceName, TaskName};
use crate::spanned::Spanned;

/// `hsm.yaml`: what one project needs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "hsm.yaml",
    description = "An hsm project: the packages and services it needs and how each service is reached"
)]
pub struct ProjectFile {
    /// The version of this file's format. This version of hsm reads `1`.
    pub version: Spanned<Version>,
    /// The project's name. It names the project's containers, networks and volumes.
    pub project: Spanned<ProjectName>,
    /// Registries in precedence order: an entry in a later registry replaces the entry
    /// of the same name in an earlier one. `bundled` is the registry built into hsm;
    /// `git+URL@REF#SUBDIR` is a registry in a git repository, pinned in `hsm.lock`;
    /// anything else is a path, relative to this file, to a folder of `*.yaml` files or
    /// to one file. Default: `[bundled]`.
    #[serde(default)]
    pub registries: Option<Vec<Spanned<String>>>,
    /// The profile every service uses unless `services.NAME.profile` says otherwise;
    /// when absent, each service uses its registry's default profile.
    #[serde(default)]
    pub profile: Option<Spanned<ProfileName>>,
    /// `.env` file(s) to read variables from, relative to this file; later files win.
    /// Default: `.env` next to this file, when it exists. A file named here must exist.
    #[serde(default)]
    pub env_file: Option<Spanned<EnvFiles>>,
    /// The packages the project needs: a registry name, or a map that overrides a
    /// registry package's source or defines a package inline.
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<Spanned<PackageEntry>>,
    /// Per-service choices. Listing a service here also asks for it directly, with
    /// the given params, whether or not a package implies it.
    #[serde(default, deserialize_with = "nullable")]
    pub services: IndexMap<Spanned<ServiceName>, Spanned<Option<ProjectService>>>,
    /// Third-party plugins: the project's own (with `path`), and what the project
    /// grants every third-party plugin, its own or a registry's, by the digest it
    /// reviewed. A plugin without a grant here may do nothing.
    #[serde(default, deserialize_with = "nullable")]
    pub plugins: IndexMap<Spanned<PluginName>, Spanned<ProjectPluginDecl>>,
}

/// What `hsm.yaml` says about one plugin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPluginDecl {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The component file, relative to `hsm.yaml`, when the project itself declares
    /// the plugin; absent for a plugin a registry declares.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// The sha256 (hex) of the component this entry is about. For the project's own
    /// plugin, hsm refuses a file whose digest differs; for a registry's plugin, the
    /// grant holds only while the registry pins this digest, so a changed plugin must
    /// be reviewed and granted again.
    pub sha256: Spanned<String>,
    /// The capabilities granted: any of `containers`, `exec`, `uv-install`, `files`,
    /// `network-probe`. An action needs its capability both declared by the plugin
    /// and granted here.
    #[serde(default, deserialize_with = "nullable")]
    pub grant: Vec<Spanned<Capability>>,
    /// Host addresses besides 127.0.0.1 that the plugin's containers may publish
    /// ports on (such as `0.0.0.0`, to reach them from other machines).
    #[serde(default, deserialize_with = "nullable")]
    pub publish_on: Vec<Spanned<String>>,
    /// For a plugin built for WIT 0.1.0 or 0.2.0, which can't declare the
    /// variables it sets in packages' environments: the names it may set. A plugin
    /// built for 0.3.0 or later sets exactly the variables it declares (`hsm plugin
    /// check` lists them), and needs nothing here.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<Spanned<String>>,
}

/// A plugin a registry ships: a registry extension. It gets no capability the
/// project has not granted it in `hsm.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginDecl {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The component file, relative to this registry file.
    pub path: Spanned<String>,
    /// The component's sha256 (hex): hsm refuses to load a file whose digest differs.
    pub sha256: Spanned<String>,
}

/// A capability a project can grant a plugin (defined once, in hsm-model).
pub use hsm_model::Capability;

/// What `hsm.yaml` says about one service.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectService {
    /// The profile this service uses, over the project's `profile`.
    #[serde(default)]
    pub profile: Option<Spanned<ProfileName>>,
    /// Parameters the project asks of the service, as a package would.
    #[serde(default, deserialize_with = "nullable")]
    pub params: ParamMap,
}

/// One entry of `hsm.yaml`'s `packages`.
#[derive(Debug)]
pub enum PackageEntry {
    /// A package defined in a registry, used as it is.
    Name(PackageName),
    /// A map: overrides a registry package's source, or defines a package inline.
    Inline(Box<PackageDecl>),
}

/// A package's definition: in a registry (the name is the map key) or inline in
/// `hsm.yaml` (the name is the `name` field).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageDecl {
    /// The package's name (inline entries in `hsm.yaml` only; in a registry, the key).
    #[serde(default)]
    #[schemars(skip)]
    pub name: Option<Spanned<PackageName>>,
    /// What the package is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Install from PyPI with this PEP 508 requirement, such as `auth-service>=1.2`.
    #[serde(default)]
    pub pypi: Option<Spanned<String>>,
    /// Install from this local folder (relative to the file that says it), copied.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Install from this local folder (relative to the file that says it) as an
    /// editable link, so changes show up without reinstalling.
    #[serde(default)]
    pub editable: Option<Spanned<String>>,
    /// Services (with params) and other packages this package needs.
    #[serde(default, deserialize_with = "nullable")]
    pub implies: Vec<Spanned<Implication>>,
    /// Commands the package runs with its environment: on every sync that changed
    /// what they depend on (migrations), or on demand (`hsm task PKG NAME`).
    #[serde(default, deserialize_with = "nullable")]
    pub tasks: IndexMap<Spanned<TaskName>, Spanned<TaskDecl>>,
}

/// A package's task.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDecl {
    /// The program and its arguments, such as `[alembic, upgrade, head]` (not run
    /// through a shell: write `[sh, -c, "…"]` for one).
    pub run: Spanned<Vec<String>>,
    /// When it runs: `sync` (the default: during `hsm sync`, after the package is
    /// installed and its services are ready, when what it depends on changed) or
    /// `demand` (only from `hsm task`).
    #[serde(default)]
    pub on: Option<Spanned<TaskOn>>,
}

/// When a task runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskOn {
    /// During `hsm sync`.
    #[default]
    Sync,
    /// Only from `hsm task PKG NAME`.
    Demand,
}

/// Something a package needs: a service with params, or another package.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Implication {
    /// The service needed.
    #[serde(default)]
    pub service: Option<Spanned<ServiceName>>,
    /// What the package asks of the service.
    #[serde(default)]
    pub params: Option<Spanned<ParamMap>>,
    /// The package needed.
    #[serde(default)]
    pub package: Option<Spanned<PackageName>>,
}

/// A registry file: packages, services and profiles that projects can use.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "hsm registry", description = "Packages, services and profiles that hsm projects can use")]
pub struct RegistryFile {
    /// The version of this file's format; `1` when given.
    #[serde(default)]
    pub version: Option<Spanned<Version>>,
    /// Python packages, by name.
    #[serde(default, deserialize_with = "nullable")]
    pub packages: IndexMap<Spanned<PackageName>, Spanned<PackageDecl>>,
    /// Services, by name.
    #[serde(default, deserialize_with = "nullable")]
    pub services: IndexMap<Spanned<ServiceName>, Spanned<ServiceDecl>>,
    /// Profiles: how services are reached, by name.
    #[serde(default, deserialize_with = "nullable")]
    pub profiles: IndexMap<Spanned<ProfileName>, Spanned<ProfileDecl>>,
    /// Plugins this registry ships (registry extensions), by name, each pinned by
    /// its sha256. They get no capability the project has not granted.
    #[serde(default, deserialize_with = "nullable")]
    pub plugins: IndexMap<Spanned<PluginName>, Spanned<PluginDecl>>,
}

/// A service in a registry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    /// What the service is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The backend plugin that handles the service, such as `postgres`.
    pub kind: Spanned<KindName>,
    /// Default parameters, such as the image.
    #[serde(default, deserialize_with = "nullable")]
    pub params: ParamMap,
    /// The profile this service uses when the project does not choose one.
    #[serde(default)]
    pub profile: Option<Spanned<ProfileName>>,
}

/// A profile in a registry: how the services it names are reached.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileDecl {
    /// `managed`: hsm runs the service in a local container. `external`: the service
    /// runs elsewhere and the profile gives its connection settings.
    pub mode: Spanned<Mode>,
    /// What the profile is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Per service: the connection settings (external), or overrides of the
    /// service's params such as `image` (managed).
    #[serde(default, deserialize_with = "nullable")]
    pub services: IndexMap<Spanned<ServiceName>, Spanned<ParamMap>>,
}

/// How a profile reaches its services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// hsm runs the service in a local container.
    Managed,
    /// The service runs elsewhere; the profile gives its connection settings.
    External,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Managed => "managed",
            Self::External => "external",
        })
    }
}

/// A map of parameters, in the order written.
pub type ParamMap = IndexMap<Spanned<String>, Spanned<RawValue>>;

/// Any YAML value inside a parameter tree. Strings are kept as written; they are
/// interpolation templates, parsed by [`crate::load()`] and resolved only when used.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string: an interpolation template.
    Str(String),
    /// A sequence.
    List(Vec<Spanned<RawValue>>),
    /// A mapping.
    Map(ParamMap),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_unit<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_none<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
                RawValue::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                i64::try_from(v).map(RawValue::Int).map_err(|_| E::custom(format!("integer `{v}` is too large")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
                Ok(RawValue::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawValue::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
                let mut out = ParamMap::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.insert(k, v);
                }
                Ok(RawValue::Map(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for RawValue {
    fn schema_name() -> Cow<'static, str> {
        "ParamValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Any value. Strings may hold `${VAR}` references, resolved from the environment or `.env` when the value is used."
        })
    }
}

/// The `version` field, kept as written so a wrong one is reported with its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The value when it is a non-negative integer.
    pub number: Option<u64>,
    /// The value as written.
    pub written: String,
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawValue::deserialize(deserializer)?;
        let (number, written) = match raw {
            RawValue::Int(i) => (u64::try_from(i).ok(), i.to_string()),
            RawValue::Float(f) => (None, f.to_string()),
            RawValue::Str(s) => (None, format!("\"{s}\"")),
            RawValue::Bool(b) => (None, b.to_string()),
            RawValue::Null => (None, "null".to_string()),
            RawValue::List(_) => (None, "a list".to_string()),
            RawValue::Map(_) => (None, "a map".to_string()),
        };
        Ok(Self { number, written })
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        "Version".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "const": 1, "description": "The file format's version; this version of hsm reads `1`." })
    }
}

/// `env_file`: one path or several.
#[derive(Debug)]
pub enum EnvFiles {
    /// One path, written as a string.
    One(String),
    /// Several paths, later ones winning.
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for EnvFiles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvFiles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E>(self, v: &str) -> Result<EnvFiles, E> {
                Ok(EnvFiles::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EnvFiles, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(EnvFiles::Many(items))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for EnvFiles {
    fn schema_name() -> Cow<'static, str> {
        "EnvFiles".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
        })
    }
}

impl<'de> Deserialize<'de> for PackageEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PackageEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a package name or a map with `name`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PackageEntry, E> {
                PackageName::try_from(v.to_string()).map(PackageEntry::Name).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PackageEntry, A::Error> {
                let decl = PackageDecl::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if decl.name.is_none() {
                    return Err(de::Error::missing_field("name"));
                }
                Ok(PackageEntry::Inline(Box::new(decl)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for PackageEntry {
    fn schema_name() -> Cow<'static, str> {
        "PackageEntry".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let name = generator.subschema_for::<PackageName>();
        let mut inline = generator.subschema_for::<PackageDecl>();
        // The inline form needs `name`, which a registry entry takes from its key.
        let decl = PackageDecl::json_schema(generator);
        if let Some(props) = decl.get("properties").cloned() {
            let mut props = props;
            if let Some(obj) = props.as_object_mut() {
                obj.insert("name".into(), serde_json::to_value(&name).unwrap_or_default());
            }
            inline = json_schema!({
                "type": "object",
                "description": "A package defined here, or a registry package whose source this entry overrides (its implications are kept, and `implies` given here are added)",
                "properties": props,
                "required": ["name"],
                "additionalProperties": false
            });
        }
        json_schema!({ "anyOf": [ name, inline ] })
    }
}

impl JsonSchema for Implication {
    fn schema_name() -> Cow<'static, str> {
        "Implication".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        #[derive(JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        /// The package needs a service, and asks it for these params.
        struct ImpliesService {
            /// The service.
            service: ServiceName,
            /// What the package asks of the service, such as `db_name`.
            #[serde(default)]
            params: Option<ParamMap>,
        }
        #[derive(JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        /// The package needs another package.
        struct ImpliesPackage {
            /// The package.
            package: PackageName,
        }
        let service = generator.subschema_for::<ImpliesService>();
        let package = generator.subschema_for::<ImpliesPackage>();
        json_schema!({ "oneOf": [ service, package ] })
    }
}

/// Reads `null` (a key with nothing after it) as the empty value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
