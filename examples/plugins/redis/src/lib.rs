//! An example third-party plugin: a `redis` service kind. It uses nothing but
//! `hsm-sdk`, the way a plugin written outside the hsm repository would.
//!
//! Every package that needs Redis gets its own logical database (`db` 0–15) on one
//! shared server. Merge ([`SharedMerge`]) checks each package's database and
//! refuses two packages asking for one; managed runs one container and waits for
//! `PING`; external hands out the profile's URL. Consumers get `REDIS_URL`,
//! `REDIS_HOST`, `REDIS_PORT` and `REDIS_DB`.

use hsm_sdk::*;

/// The plugin.
pub struct Redis;

const PORT: u16 = 6379;

impl Backend for Redis {
    fn describe() -> PluginInfo {
        PluginInfo::new("redis", env!("CARGO_PKG_VERSION"), ["redis"])
            .param("db", "The logical database (0-15) this package uses; each package needs its own", false)
            .param("image", "The Redis image, with its tag (default `redis:7`)", false)
            .param("maxmemory", "Memory limit of the server, such as `256mb`; all packages must agree", false)
            .setting("url", "The URL of a Redis server running elsewhere, such as `redis://cache:6379`", true)
            .capability(Capability::Containers)
            .capability(Capability::Exec)
            .variable("REDIS_URL", "The consumer's database as a `redis://` URL")
            .variable("REDIS_HOST", "The server's host (managed server only)")
            .variable("REDIS_PORT", "The server's port (managed server only)")
            .variable("REDIS_DB", "The consumer's logical database")
    }

    // `image` and `maxmemory` are the server's: packages must agree on them.
    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        let merge = SharedMerge::new(&Self::describe()).unique("db").check("db", int_in(0..=15, "`db` is 0 to 15"));
        // A package that gives no `db` has database 0, so it can't share it unseen.
        merge.default_for("db", |_| Value::Int(0)).merge(&req).map(Value::from)
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        req.check_settings(&Self::describe())?;
        let mut plan = Plan::new();
        let (url, server) = match req.profile.mode {
            Mode::Managed => {
                let image = req.param("image").and_then(Value::as_str).unwrap_or("redis:7");
                let mut command: Vec<Text> = ["redis-server", "--save", "60", "1"].map(Text::from).into();
                if let Some(mm) = req.param("maxmemory").and_then(Value::to_text) {
                    command.extend(["--maxmemory".into(), mm]);
                }
                plan.action(Container::new("server", image).port(PORT).volume("data", "/data").command(command));
                plan.action(Wait::new(Probe::Exec(Exec::new("server", ["redis-cli", "ping"]))));
                let server = req.published("server", PORT);
                (server.url("redis"), Some(server))
            }
            Mode::External => (req.url_setting("url")?, None),
        };
        for consumer in &req.consumers {
            let db = req.merged_for(consumer).get("db").and_then(Value::as_int).unwrap_or(0);
            plan.env(consumer, "REDIS_URL", text!(url.clone(), "/", db));
            if let Some(server) = &server {
                plan.env(consumer, "REDIS_HOST", server.host.clone());
                plan.env(consumer, "REDIS_PORT", server.port.clone());
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
        assert_eq!(merged.get(CONSUMERS).and_then(|c| c.get("worker")), Some(&db(1)));
        // Plan reads each consumer's database from the merged configuration.
        let plan = Redis::plan(
            plan_request("cache", "redis", merged).consumer("api", Value::Null).consumer("worker", Value::Null).build(),
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
        assert_eq!(
            err,
            MergeError::conflict("`api` and `worker` both ask for `db` `3`", "db", [0, 1])
                .hint("give each package its own `db`")
        );
        let req = merge_request("cache", "redis").contribution("api", db(16)).build();
        assert_eq!(Redis::merge(req).unwrap_err(), MergeError::invalid("`db` is 0 to 15", "db", Some(0)));
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
