//! The crate hsm backend plugins are written with.
//!
//! A backend plugin serves one or more service kinds (postgres, redis, ...). It is a
//! WebAssembly component built for `wasm32-wasip2` that hsm loads in a sandbox: it
//! receives data and returns data, never a secret's value, never the machine. The
//! host checks every action a plugin returns against the capabilities the user
//! granted it, then executes it.
//!
//! Implement [`Backend`] and call [`export_plugin!`]:
//!
//! ```
//! use hsm_sdk::*;
//!
//! struct Redis;
//!
//! impl Backend for Redis {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("redis", "0.1.0", ["redis"])
//!             .capability(Capability::Containers)
//!             .variable("REDIS_URL", "where the consumer's Redis answers")
//!     }
//!
//!     fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
//!         let mut plan = Plan::new();
//!         plan.action(Container::new("server", "redis:7").port(6379));
//!         for consumer in &req.consumers {
//!             plan.env(consumer, "REDIS_URL", text!("redis://", req.host_address.as_str(), ":", Text::host_port("server", 6379)));
//!         }
//!         Ok(plan)
//!     }
//! }
//!
//! export_plugin!(Redis);
//! ```
//!
//! `merge` has a default (defaults, then every contribution overlaid in order, with
//! a conflict when two contributions set one key to different values); override it
//! when several packages can ask different things of one service. Most kinds share
//! one shape — a shared server, a resource of its own per consumer, settings all
//! must agree on — and [`SharedMerge`] merges it from a few declarations; `plan`
//! reads each consumer's part back with [`PlanRequest::merged_for`].
//!
//! Test the logic natively by calling your type's methods with the builders of
//! [`testing`]; test the built component in hsm's real runtime with
//! `hsm_sdk_host::ComponentPlugin` (see the [plugin author guide]).
//!
//! [plugin author guide]: https://github.com/hsm-dev/hsm/blob/main/docs/plugin-authors.md

mod plan;
mod request;
mod shared;
mod text;
mod value;

pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use plan::{
    Action, ConsumerEnv, Container, ENV_NAMES, Endpoint, Exec, HttpProbe, Mount, PackageSource, Plan, PlanError, Port,
    Probe, Protocol, PythonPackage, RestartPolicy, Wait, WriteFile,
};
pub use request::{
    Capability, Consumer, Contribution, MergeError, MergeRequest, Mode, ParamSpec, PlanRequest, PluginInfo, Profile,
    Requester, VariableSpec,
};
pub use shared::{CONSUMERS, Merged, PROJECT_KEY, Published, SharedMerge, consumer_key, int_in};
pub use text::{Encoding, Piece, SecretRef, Text};
pub use value::{Map, Value};

/// The WIT package version this SDK builds plugins for.
pub const WIT_VERSION: &str = "0.4.0";

/// What a backend plugin implements.
pub trait Backend {
    /// Describes the plugin: its name, version, the kinds it serves, the parameters
    /// and settings it reads, the capabilities it needs and the variables it sets
    /// in its consumers' environments.
    fn describe() -> PluginInfo;

    /// Merges what several requesters asked of one service into one configuration.
    ///
    /// The default starts from the registry's defaults and overlays every
    /// contribution in order; two contributions that set one key to different values
    /// are a conflict.
    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        default_merge(&req)
    }

    /// Plans one service: the actions that provision it (for a managed profile) and
    /// the environment each consumer gets.
    fn plan(req: PlanRequest) -> Result<Plan, PlanError>;
}

/// The default merge: defaults, then each contribution overlaid; a key set to two
/// different values by two contributions is a conflict naming both.
pub fn default_merge(req: &MergeRequest) -> Result<Value, MergeError> {
    let mut merged = req.defaults.clone();
    if matches!(merged, Value::Null) {
        merged = Value::Map(Map::new());
    }
    let mut set_by: Vec<(String, usize)> = Vec::new();
    for (i, c) in req.contributions.iter().enumerate() {
        let Some(params) = c.params.as_map() else {
            if matches!(c.params, Value::Null) {
                continue;
            }
            return Err(MergeError::invalid("params must be a map", "", Some(i)));
        };
        for (key, value) in params.iter() {
            if key == ENV_NAMES {
                continue;
            }
            if let Some((_, first)) = set_by.iter().find(|(k, _)| k == key) {
                let earlier = req.contributions[*first].params.get(key);
                if earlier != Some(value) {
                    return Err(MergeError::conflict(format!("`{key}` is set to different values"), key, [*first, i]));
                }
                continue;
            }
            set_by.push((key.to_string(), i));
            if let Value::Map(m) = &mut merged {
                m.insert(key, value.clone());
            }
        }
    }
    Ok(merged)
}

/// Merges keys every contribution must agree on: the first contribution that sets a
/// key gives its value (over the registry's default already in `merged`), and a
/// later one that sets it differently is a conflict naming both, such as
/// ``"`version` differs: `auth-service` asks `16`, `billing-service` asks `15`"``.
pub fn merge_agreeing(req: &MergeRequest, keys: &[&str], merged: &mut Map) -> Result<(), MergeError> {
    for key in keys {
        let mut first: Option<usize> = None;
        for (i, c) in req.contributions.iter().enumerate() {
            let Some(value) = c.params.get(key) else { continue };
            match first {
                Some(j) if req.contributions[j].params.get(key) != Some(value) => {
                    let show = |v: Option<&Value>| v.and_then(Value::to_text).map_or("?".into(), |t| t.to_string());
                    let message = format!(
                        "`{key}` differs: {} asks `{}`, {} asks `{}`",
                        req.contributions[j].from,
                        show(req.contributions[j].params.get(key)),
                        c.from,
                        show(Some(value)),
                    );
                    return Err(MergeError::conflict(message, *key, [j, i]));
                }
                Some(_) => {}
                None => {
                    first = Some(i);
                    merged.insert(*key, value.clone());
                }
            }
        }
    }
    Ok(())
}

/// An image reference with a tag: `image` as it is when it has a tag or digest,
/// else `image:<tag>`; `None` when it has neither and there is no tag to add.
pub fn image_with_tag(image: &str, tag: Option<&str>) -> Option<String> {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        return Some(image.to_string());
    }
    tag.map(|tag| format!("{image}:{tag}"))
}

/// Exports a type implementing [`Backend`] as the plugin's component interface.
///
/// Call it once, at the crate's top level. On targets other than `wasm32` it
/// expands to nothing, so the crate's native tests link without WebAssembly
/// exports.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __HsmPluginAdapter = $crate::__private::Adapter<$ty>;
            $crate::__private::bindings::__export_hsm_plugin!(__HsmPluginAdapter with_types_in $crate::__private::bindings);
        };
    };
}

/// Builds a [`Text`] from pieces: string literals, `String`s, `&str`s, [`Text`]s and
/// integers, concatenated.
///
/// ```
/// use hsm_sdk::{text, Text};
/// let port = Text::host_port("server", 5432);
/// let url = text!("postgres://127.0.0.1:", port, "/app");
/// assert_eq!(url.to_string(), "postgres://127.0.0.1:${hsm:port:server:5432}/app");
/// ```
#[macro_export]
macro_rules! text {
    ($($part:expr),* $(,)?) => {
        $crate::Text::concat([$($crate::Text::from($part)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(pkg: &str, params: Value) -> Contribution {
        Contribution { from: Requester::Package(pkg.into()), origin: format!("{pkg}.yaml:1:1"), params }
    }

    #[test]
    fn default_merge_overlays_and_reports_conflicts() {
        let req = MergeRequest {
            service: "cache".into(),
            kind: "redis".into(),
            defaults: Value::map([("version", "7".into())]),
            contributions: vec![
                contribution("a", Value::map([("maxmemory", "1gb".into())])),
                contribution("b", Value::map([("maxmemory", "1gb".into()), ("version", "7".into())])),
            ],
        };
        let merged = default_merge(&req).unwrap();
        assert_eq!(merged.get_str("maxmemory"), Some("1gb"));
        assert_eq!(merged.get_str("version"), Some("7"));

        let mut clash = req.clone();
        clash.contributions[1] = contribution("b", Value::map([("maxmemory", "2gb".into())]));
        let err = default_merge(&clash).unwrap_err();
        assert_eq!(err, MergeError::conflict("`maxmemory` is set to different values", "maxmemory", [0, 1]));
    }
}
