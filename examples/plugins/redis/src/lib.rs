//! An example third-party plugin: a `redis` service kind. It uses nothing but
//! `hsm-sdk`, the way a plugin written outside the hsm repository would.
//!
//! Every package that needs Redis gets its own logical database (`db` 0–15) on one
//! shared server. Merge collects the databases and refuses two packages asking for
//! one database; managed runs one container and waits for `PING`; external hands
//! out the profile's URL. Consumers get `REDIS_URL`, `REDIS_HOST`, `REDIS_PORT` and
//! `REDIS_DB`.

use hsm_sdk::*;

/// The plugin.
pub struct Redis;

const CONTAINER: &str = "server";
const PORT: u16 = 6379;
const PARAMS: &[&str] = &["db", "image", "maxmemory"];

impl Backend for Redis {
    fn describe() -> PluginInfo {
        PluginInfo::new("redis", env!("CARGO_PKG_VERSION"), ["redis"])
            .param("db", "The logical database (0-15) this package uses; each package needs its own", false)
            .param("image", "The Redis image, with its tag (default `redis:7`)", false)
            .param("maxmemory", "Memory limit of the server, such as `256mb`; all packages must agree", false)
            .setting(
                "url",
                "The URL of a Redis server running elsewhere, such as `redis://cache.example.com:6379`",
                true,
            )
            .capability(Capability::Containers)
            .capability(Capability::Exec)
            .variable("REDIS_URL", "The consumer's database as a `redis://` URL")
            .variable("REDIS_HOST", "The server's host (managed server only)")
            .variable("REDIS_PORT", "The server's port (managed server only)")
            .variable("REDIS_DB", "The consumer's logical database")
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        let mut merged = Map::new();
        merged.insert("image", req.defaults.get("image").cloned().unwrap_or_else(|| "redis:7".into()));
        let mut dbs: Vec<(i64, usize)> = Vec::new();
        let mut maxmemory: Option<(Value, usize)> = None;
        for (i, c) in req.contributions.iter().enumerate() {
            if let Some(key) = c.params.unknown_keys(PARAMS).first() {
                return Err(MergeError::invalid(
                    format!("unknown parameter `{key}`; redis reads `db`, `image`, `maxmemory`"),
                    *key,
                    Some(i),
                ));
            }
            if let Some(db) = c.params.get("db") {
                let n = db
                    .as_int()
                    .filter(|n| (0..16).contains(n))
                    .ok_or_else(|| MergeError::invalid("`db` must be a number from 0 to 15", "db", Some(i)))?;
                if let Some((_, j)) = dbs.iter().find(|(d, _)| *d == n) {
                    return Err(MergeError::conflict(
                        format!("two packages ask for Redis database {n}"),
                        "db",
                        [*j, i],
                    ));
                }
                dbs.push((n, i));
            }
            if let Some(mm) = c.params.get("maxmemory") {
                match &maxmemory {
                    Some((first, j)) if first != mm => {
                        return Err(MergeError::conflict("`maxmemory` differs", "maxmemory", [*j, i]));
                    }
                    Some(_) => {}
                    None => maxmemory = Some((mm.clone(), i)),
                }
            }
            if let Some(image) = c.params.get("image") {
                merged.insert("image", image.clone());
            }
        }
        if let Some((mm, _)) = maxmemory {
            merged.insert("maxmemory", mm);
        }
        merged.insert("databases", Value::List(dbs.into_iter().map(|(d, _)| Value::Int(d)).collect()));
        Ok(Value::Map(merged))
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        let mut plan = Plan::new();
        let (host, port, base_url) = match req.profile.mode {
            Mode::Managed => {
                let image = req.param("image").and_then(Value::as_str).unwrap_or("redis:7");
                let mut command = vec![Text::from("redis-server"), "--save".into(), "60".into(), "1".into()];
                if let Some(mm) = req.param("maxmemory").and_then(Value::to_text) {
                    command.extend(["--maxmemory".into(), mm]);
                }
                plan.action(Container::new(CONTAINER, image).port(PORT).volume("data", "/data").command(command));
                plan.action(Wait::new(Probe::Exec(Exec::new(CONTAINER, ["redis-cli", "ping"]))));
                let host = Text::lit(req.host_address.as_str());
                let port = Text::host_port(CONTAINER, PORT);
                let url = text!("redis://", host.clone().url_host(), ":", port.clone());
                (host, port, url)
            }
            Mode::External => {
                let url =
                    req.profile.settings.get_text("url").cloned().map(Text::url_userinfo_encoded).ok_or_else(|| {
                        PlanError::at(
                            "url",
                            format!("profile `{}` gives no `url` for this redis service", req.profile.name),
                        )
                    })?;
                (Text::new(), Text::new(), url)
            }
        };
        for consumer in &req.consumers {
            let db = consumer.params.get("db").and_then(Value::as_int).unwrap_or(0);
            plan.env(consumer, "REDIS_URL", text!(base_url.clone(), "/", db));
            if !host.is_empty() {
                plan.env(consumer, "REDIS_HOST", host.clone());
                plan.env(consumer, "REDIS_PORT", port.clone());
            }
            plan.env(consumer, "REDIS_DB", db);
        }
        Ok(plan)
    }
}

export_plugin!(Redis);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    fn db(n: i64) -> Value {
        Value::map([("db", Value::Int(n))])
    }

    #[test]
    fn each_package_gets_its_own_database() {
        let merged = Redis::merge(
            merge_request("cache", "redis").contribution("api", db(0)).contribution("worker", db(1)).build(),
        )
        .unwrap();
        assert_eq!(merged.get("databases"), Some(&Value::List(vec![Value::Int(0), Value::Int(1)])));
        let plan = Redis::plan(
            plan_request("cache", "redis", merged).consumer("api", db(0)).consumer("worker", db(1)).build(),
        )
        .unwrap();
        assert_eq!(
            plan.env_of(Some("worker")).unwrap()[0].1.to_string(),
            "redis://127.0.0.1:${hsm:port:server:6379}/1"
        );
    }

    #[test]
    fn two_packages_on_one_database_conflict() {
        let err = Redis::merge(
            merge_request("cache", "redis").contribution("api", db(3)).contribution("worker", db(3)).build(),
        )
        .unwrap_err();
        assert_eq!(err, MergeError::conflict("two packages ask for Redis database 3", "db", [0, 1]));
    }

    /// The same requests, through the compiled component in hsm's real runtime.
    #[test]
    fn the_component_behaves_like_the_code() {
        use hsm_sdk_host::ComponentPlugin;
        let wasm = build_plugin(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME")).unwrap();
        let plugin = ComponentPlugin::load(&wasm).unwrap();
        assert_eq!(plugin.describe(), Redis::describe());
        let req = merge_request("cache", "redis").contribution("api", db(0)).contribution("worker", db(1)).build();
        let merged = plugin.merge(req.clone()).unwrap();
        assert_eq!(merged, Redis::merge(req).unwrap());
        let req = plan_request("cache", "redis", merged).consumer("api", db(0)).consumer("worker", db(1)).build();
        assert_eq!(plugin.plan(req.clone()).unwrap(), Redis::plan(req).unwrap());
    }
}
