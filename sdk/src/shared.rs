//! Helpers for the shape most service kinds share: one server shared by every
//! consumer, a resource of its own per consumer (a database, a collection, a path
//! prefix) that must be unique or may be shared, settings of the server every
//! consumer must agree on (`version`), and each consumer's environment built from
//! the server's address. They turn what every such plugin wrote by hand (unknown
//! parameters refused, values checked, conflicts naming both sources) into a few
//! declarations, and let `merge` hand each consumer's checked parameters to `plan`.

use std::collections::{HashMap, HashSet};

use crate::plan::{ENV_NAMES, PlanError};
use crate::request::{Consumer, MergeError, MergeRequest, Mode, PlanRequest, PluginInfo, Requester};
use crate::text::Text;
use crate::value::{Map, Value};

/// The key of the merged configuration under which [`Merged::into_value`] keeps
/// each consumer's own parameters, by consumer ([`consumer_key`]), for
/// [`PlanRequest::merged_for`] to read back. Parameter names can't hold
/// parentheses, so it never meets a parameter of the plugin's.
pub const CONSUMERS: &str = "(consumers)";

/// The key that stands for the project itself among [`CONSUMERS`] (package names
/// can't hold parentheses).
pub const PROJECT_KEY: &str = "(project)";

/// The key of a consumer among [`CONSUMERS`]: its package's name, or
/// [`PROJECT_KEY`] for the project.
pub fn consumer_key(package: Option<&str>) -> &str {
    package.unwrap_or(PROJECT_KEY)
}

fn requester_key(r: &Requester) -> &str {
    match r {
        Requester::Project => PROJECT_KEY,
        Requester::Package(p) => p,
    }
}

/// How a parameter each consumer gives for itself is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    /// No two consumers may ask for the same value.
    Unique,
    /// Consumers may ask for the same value (and then share the resource).
    Shareable,
}

/// A value check: the value as the plugin keeps it, or why it is wrong.
type Check<'a> = Box<dyn Fn(&Value) -> Result<Value, String> + 'a>;

/// A declarative `merge` for a shared server.
///
/// Every parameter the plugin declares in [`PluginInfo::param`] is a setting of
/// the server that all contributions must agree on, unless it is declared as a
/// consumer's own: [`SharedMerge::unique`] (a Redis database, a path prefix: no two
/// consumers may ask for the same) or [`SharedMerge::per_consumer`] (a database
/// several packages may use together). [`SharedMerge::check`] checks and
/// normalizes a parameter's value wherever it is given.
///
/// [`SharedMerge::merge`] then refuses parameters the plugin doesn't declare
/// (``unknown parameter `dbb`; redis reads `db`, `image` ``, so hsm can suggest
/// the right one), reports a failed check at the contribution that gave the value,
/// and reports two contributions that clash by both their indices, so that hsm
/// points at both lines: a setting that differs (`` `version` differs: `api` asks
/// `16`, `worker` asks `15` ``) or a unique value asked twice (`` `api` and
/// `worker` both ask for `db` `3` ``, with the hint ``give each package its own
/// `db` ``).
///
/// ```
/// use hsm_sdk::*;
/// use hsm_sdk::testing::*;
///
/// let info = PluginInfo::new("redis", "0.1.0", ["redis"])
///     .param("db", "The logical database (0-15); each package needs its own", false)
///     .param("image", "The image; all packages must agree", false);
/// let merge = SharedMerge::new(&info)
///     .unique("db")
///     .check("db", |v| v.as_int().filter(|n| (0..16).contains(n)).map(Value::Int).ok_or("`db` must be a number from 0 to 15"));
///
/// let req = merge_request("cache", "redis")
///     .contribution("api", Value::map([("db", 0.into())]))
///     .contribution("worker", Value::map([("db", "1".into())]))
///     .build();
/// let merged = merge.merge(&req).unwrap();
/// assert_eq!(merged.values("db"), [Value::Int(0), Value::Int(1)]);
///
/// let clash = merge_request("cache", "redis")
///     .contribution("api", Value::map([("db", 3.into())]))
///     .contribution("worker", Value::map([("db", 3.into())]))
///     .build();
/// let err = merge.merge(&clash).unwrap_err();
/// assert_eq!(err.message(), "`api` and `worker` both ask for `db` `3`");
/// ```
pub struct SharedMerge<'a> {
    plugin: String,
    known: Vec<String>,
    own: Vec<(String, Sharing)>,
    checks: Vec<(String, Check<'a>)>,
    defaults: Vec<(String, Default<'a>)>,
}

/// A consumer's own value of a key it doesn't give, made from its package's name
/// (`None` for the project).
type Default<'a> = Box<dyn Fn(Option<&str>) -> Value + 'a>;

impl<'a> SharedMerge<'a> {
    /// A merge for the plugin `info` describes: its name for messages, its
    /// declared parameters as the ones packages may give (in the order declared),
    /// each one a setting every contribution must agree on until declared
    /// otherwise. Pass `&Self::describe()`.
    pub fn new(info: &PluginInfo) -> Self {
        Self {
            plugin: info.name.clone(),
            known: info.params.iter().map(|p| p.name.clone()).collect(),
            own: Vec::new(),
            checks: Vec::new(),
            defaults: Vec::new(),
        }
    }

    /// `key` is each consumer's own, and no two consumers may ask for the same
    /// value (a Redis database, a path prefix). A consumer that doesn't give it
    /// has none: `plan` decides what it gets (the registry's default stays in the
    /// configuration, where [`PlanRequest::param`] reads it).
    #[must_use]
    pub fn unique(mut self, key: &str) -> Self {
        self.own.push((key.to_string(), Sharing::Unique));
        self
    }

    /// `key` is each consumer's own, and several consumers may ask for the same
    /// value (a database that two packages use together). A consumer that doesn't
    /// give it has none, as with [`SharedMerge::unique`].
    #[must_use]
    pub fn per_consumer(mut self, key: &str) -> Self {
        self.own.push((key.to_string(), Sharing::Shareable));
        self
    }

    /// Gives a consumer that doesn't ask for its own `key` the value `default`
    /// makes from its package's name (`None` for the project, which is a
    /// consumer only of a service no package implies), checked like a
    /// value it gave, before values are compared: with [`SharedMerge::unique`], a
    /// package that asks for nothing then can't silently share another's
    /// resource (`redis` gives it a database of its own, `fileserver` a folder
    /// named after it), and one that asks for that same value clashes with it.
    #[must_use]
    pub fn default_for(mut self, key: &str, default: impl Fn(Option<&str>) -> Value + 'a) -> Self {
        self.defaults.push((key.to_string(), Box::new(default)));
        self
    }

    /// Checks `key` wherever it is given (the registry's defaults and every
    /// contribution): `check` returns the value to keep (normalized: `"3"` as
    /// `3`, `docs` as `/docs/`), or the message of a
    /// [`MergeError::Invalid`] at the contribution that gave it. Values are
    /// compared after the check, so `version: 16` agrees with `version: "16"`
    /// when the check makes both one value.
    #[must_use]
    pub fn check<E: Into<String>>(mut self, key: &str, check: impl Fn(&Value) -> Result<Value, E> + 'a) -> Self {
        self.checks.push((key.to_string(), Box::new(move |v| check(v).map_err(Into::into))));
        self
    }

    /// Merges the contributions: the registry's defaults, every setting the
    /// contributions agree on, and each consumer's own parameters.
    pub fn merge(&self, req: &MergeRequest) -> Result<Merged, MergeError> {
        let defaults = self.checked(&req.defaults, None)?;
        let asked = (req.contributions.iter().enumerate())
            .map(|(i, c)| self.checked(&c.params, Some(i)))
            .collect::<Result<Vec<_>, _>>()?;

        // The server's settings: the defaults, then the first contribution that
        // sets each one; a later one that sets it differently clashes.
        let mut config = defaults;
        let mut first: Vec<(&str, usize)> = Vec::new();
        for (i, params) in asked.iter().enumerate() {
            for (key, value) in params.iter().filter(|(k, _)| !self.is_own(k)) {
                match first.iter().find(|(k, _)| *k == key) {
                    Some(&(_, j)) if asked[j].get(key) != Some(value) => {
                        return Err(differs(req, key, [j, i], [asked[j].get(key), Some(value)]));
                    }
                    Some(_) => {}
                    None => {
                        first.push((key, i));
                        config.insert(key, value.clone());
                    }
                }
            }
        }

        // Each consumer's own: what its contributions give (one value per key),
        // with the contribution each came from. Projects have thousands of
        // packages: requesters and values are looked up, not scanned for.
        let mut consumers: Vec<Own<'_>> = Vec::new();
        let mut by_requester: HashMap<&Requester, usize> = HashMap::new();
        // Every value of a consumer's own key, in the order contributions give them.
        let mut all: Vec<(String, Value)> = Vec::new();
        // The project is a consumer only of a service no package implies; when
        // packages do, listing it only configures it: it gets no default, and a
        // unique value of its own would serve nobody.
        let packages = req.contributions.iter().any(|c| matches!(c.from, Requester::Package(_)));
        for (i, c) in req.contributions.iter().enumerate() {
            if packages && c.from == Requester::Project {
                let mut unique = self.own.iter().filter(|(_, s)| *s == Sharing::Unique);
                if let Some((key, _)) = unique.find(|(k, _)| asked[i].get(k).is_some()) {
                    let service = &req.service;
                    let message = format!(
                        "`{key}` is each package's own, and packages use `{service}`: the project's would serve nobody"
                    );
                    let hint = format!("set `{key}` where a package implies `{service}`, or remove it here");
                    return Err(MergeError::invalid(message, key.as_str(), Some(i)).hint(hint));
                }
            }
            let at = *by_requester.entry(&c.from).or_insert_with(|| {
                consumers.push(Own { from: &c.from, first: i, params: Map::new(), set_by: Vec::new() });
                consumers.len() - 1
            });
            let own = &mut consumers[at];
            for (key, sharing) in &self.own {
                let Some(value) = asked[i].get(key) else { continue };
                match own.set_by.iter().find(|(k, _)| k == key) {
                    // A package may imply the service twice for two resources (a
                    // database for its tests, say): both are made, and its
                    // environment names the first.
                    Some(_) if *sharing == Sharing::Shareable && own.params.get(key) != Some(value) => {
                        all.push((key.clone(), value.clone()));
                    }
                    Some(&(_, j)) if own.params.get(key) != Some(value) => {
                        let message = format!(
                            "{} asks for `{key}` {} and {}",
                            c.from,
                            shown(own.params.get(key)),
                            shown(Some(value))
                        );
                        let hint = format!("make {}'s requests agree on `{key}`", c.from);
                        return Err(MergeError::conflict(message, key.as_str(), [j, i]).hint(hint));
                    }
                    Some(_) => {}
                    None => {
                        own.set_by.push((key.clone(), i));
                        own.params.insert(key.as_str(), value.clone());
                        all.push((key.clone(), value.clone()));
                    }
                }
            }
        }
        for own in consumers.iter_mut().filter(|o| !(packages && *o.from == Requester::Project)) {
            for (key, default) in &self.defaults {
                if own.params.get(key).is_none() {
                    let package = match own.from {
                        Requester::Project => None,
                        Requester::Package(p) => Some(p.as_str()),
                    };
                    let value = default(package);
                    let value = match self.checks.iter().find(|(k, _)| k == key) {
                        Some((_, check)) => check(&value).map_err(|m| MergeError::invalid(m, key, Some(own.first)))?,
                        None => value,
                    };
                    own.set_by.push((key.clone(), own.first));
                    own.params.insert(key.as_str(), value.clone());
                    all.push((key.clone(), value));
                }
            }
        }
        for (key, _) in self.own.iter().filter(|(_, s)| *s == Sharing::Unique) {
            let mut taken: HashMap<Vec<u8>, &Own<'_>> = HashMap::new();
            for own in &consumers {
                let Some(value) = own.params.get(key) else { continue };
                if let Some(earlier) = taken.insert(identity(value), own) {
                    let message =
                        format!("{} and {} both ask for `{key}` {}", earlier.from, own.from, shown(Some(value)));
                    let hint = format!("give each package its own `{key}`");
                    return Err(MergeError::conflict(message, key.as_str(), [earlier.at(key), own.at(key)]).hint(hint));
                }
            }
        }

        Ok(Merged {
            config,
            consumers: consumers.into_iter().map(|o| (o.from.clone(), o.params)).collect(),
            all,
            has_own: !self.own.is_empty(),
        })
    }

    fn is_own(&self, key: &str) -> bool {
        self.own.iter().any(|(k, _)| k == key)
    }

    /// A contribution's (or the defaults') parameters, checked: a map of declared
    /// keys, each value as its check keeps it, without `env_names`.
    fn checked(&self, params: &Value, at: Option<usize>) -> Result<Map, MergeError> {
        let map = match params {
            Value::Null => return Ok(Map::new()),
            Value::Map(map) => map,
            _ => return Err(MergeError::invalid("params must be a map", "", at)),
        };
        let mut out = Map::new();
        for (key, value) in map.iter().filter(|(k, _)| *k != ENV_NAMES) {
            if !self.known.iter().any(|k| k == key) {
                let reads = self.known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                return Err(MergeError::invalid(
                    format!("unknown parameter `{key}`; {} reads {reads}", self.plugin),
                    key,
                    at,
                ));
            }
            let value = match self.checks.iter().find(|(k, _)| k == key) {
                Some((_, check)) => check(value).map_err(|message| MergeError::invalid(message, key, at))?,
                None => value.clone(),
            };
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// A check for [`SharedMerge::check`]: a whole number in `range` (`"3"` counts,
/// kept as `3`), else `message`.
pub fn int_in(
    range: std::ops::RangeInclusive<i64>,
    message: &'static str,
) -> impl Fn(&Value) -> Result<Value, &'static str> {
    move |v| v.as_int().filter(|n| range.contains(n)).map(Value::Int).ok_or(message)
}

/// One requester's own parameters while merging.
struct Own<'r> {
    from: &'r Requester,
    /// Its first contribution.
    first: usize,
    params: Map,
    /// The contribution each key came from.
    set_by: Vec<(String, usize)>,
}

impl Own<'_> {
    fn at(&self, key: &str) -> usize {
        self.set_by.iter().find(|(k, _)| k == key).map_or(0, |(_, i)| *i)
    }
}

/// What tells two values apart, hashable: their encoding as the host reads it
/// (equal values encode alike; maps compare in order, as [`Value`]'s `==` does).
fn identity(value: &Value) -> Vec<u8> {
    crate::__private::encode(value)
}

/// A value as messages show it: `` `16` `` (references as `${hsm:secret:N}`).
fn shown(v: Option<&Value>) -> String {
    match v.and_then(Value::to_text) {
        Some(text) => format!("`{text}`"),
        None => format!("a {}", v.map_or("null", Value::type_name)),
    }
}

/// Two contributions that set one setting differently.
fn differs(req: &MergeRequest, key: &str, [j, i]: [usize; 2], values: [Option<&Value>; 2]) -> MergeError {
    let (a, b) = (&req.contributions[j].from, &req.contributions[i].from);
    let message = match values.map(|v| v.and_then(Value::to_text)) {
        [Some(x), Some(y)] => format!("`{key}` differs: {a} asks `{x}`, {b} asks `{y}`"),
        _ => format!("`{key}` differs between {a} and {b}"),
    };
    MergeError::conflict(message, key, [j, i])
}

/// What [`SharedMerge::merge`] made of the contributions.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The server's configuration: the registry's defaults (checked) with the
    /// settings the contributions agree on. What consumers ask for their own is
    /// not in it.
    pub config: Map,
    /// Each requester's own parameters, checked, in the order requesters first
    /// contributed: only those it gave.
    pub consumers: Vec<(Requester, Map)>,
    /// Every value of a consumer's own key, in the order contributions gave them
    /// (a consumer may ask for more than one of a shareable key).
    all: Vec<(String, Value)>,
    has_own: bool,
}

impl Merged {
    /// The values consumers have for their own parameter `key`, each once, in
    /// order: the databases to create, the folders to make.
    pub fn values(&self, key: &str) -> Vec<Value> {
        let mut seen = HashSet::new();
        let values = self.all.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        values.filter(|v| seen.insert(identity(v))).cloned().collect()
    }

    /// The merged configuration for `plan`: [`Merged::config`] with, when the
    /// merge declared parameters of consumers' own, each consumer's under
    /// [`CONSUMERS`] for [`PlanRequest::merged_for`]. `hsm plan` shows it as it is.
    pub fn into_value(self) -> Value {
        let mut config = self.config;
        if self.has_own {
            let consumers = self.consumers.iter().map(|(r, p)| (requester_key(r), Value::Map(p.clone()))).collect();
            config.insert(CONSUMERS, Value::Map(consumers));
        }
        Value::Map(config)
    }
}

impl From<Merged> for Value {
    fn from(merged: Merged) -> Self {
        merged.into_value()
    }
}

/// Where consumers on this machine reach a published port of one of the
/// service's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The host (`127.0.0.1`), as a consumer writes it.
    pub host: Text,
    /// The host port it is published on (a reference the host fills in).
    pub port: Text,
}

impl Published {
    /// `scheme://host:port`, an IPv6 host in brackets.
    pub fn url(&self, scheme: &str) -> Text {
        crate::text!(scheme, "://", self.host.clone().url_host(), ":", self.port.clone())
    }
}

static NULL: Value = Value::Null;

impl PlanRequest {
    /// What `merge` kept of `consumer`'s own parameters: its entry under
    /// [`CONSUMERS`] in the merged configuration (null when it has none). When
    /// the configuration has no [`CONSUMERS`] (a merge that doesn't write them),
    /// the consumer's parameters as it gave them.
    pub fn merged_for<'a>(&'a self, consumer: &'a Consumer) -> &'a Value {
        match self.config.get(CONSUMERS) {
            Some(Value::Map(by_consumer)) => {
                by_consumer.get(consumer_key(consumer.package.as_deref())).unwrap_or(&NULL)
            }
            _ => &consumer.params,
        }
    }

    /// Where consumers reach `port` of the service's container `container`:
    /// [`PlanRequest::host_address`] and the host port it is published on.
    pub fn published(&self, container: &str, port: u16) -> Published {
        Published { host: Text::lit(self.host_address.as_str()), port: Text::host_port(container, port) }
    }

    /// Refuses an external profile's setting the plugin doesn't declare in
    /// [`PluginInfo::setting`] (``unknown setting `uri`; redis reads `url` ``,
    /// at that key, so hsm can point at it and suggest the right one). A managed
    /// profile's settings override parameters and are not checked here.
    pub fn check_settings(&self, info: &PluginInfo) -> Result<(), PlanError> {
        if self.profile.mode != Mode::External {
            return Ok(());
        }
        let known: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
        match self.profile.settings.unknown_keys(&known).first() {
            Some(key) => {
                let reads = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                Err(PlanError::at(*key, format!("unknown setting `{key}`; {} reads {reads}", info.name)))
            }
            None => Ok(()),
        }
    }

    /// The profile's setting `key` as a text (a number as written), or an error
    /// at `key` naming the profile that doesn't give it.
    pub fn required_setting(&self, key: &str) -> Result<Text, PlanError> {
        self.profile.settings.get(key).and_then(Value::to_text).ok_or_else(|| {
            PlanError::at(
                key,
                format!("profile `{}` gives no `{key}` for this {} service", self.profile.name, self.kind),
            )
        })
    }

    /// The profile's setting `key`, a whole URL the user wrote, with the secrets
    /// in its user-info encoded ([`Text::url_userinfo_encoded`]); an error at
    /// `key` when the profile doesn't give it.
    pub fn url_setting(&self, key: &str) -> Result<Text, PlanError> {
        self.required_setting(key).map(Text::url_userinfo_encoded)
    }
}

#[cfg(test)]
mod tests;
