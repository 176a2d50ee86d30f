//! The bundled `qdrant` backend: a Qdrant vector database, local or in the cloud.
//!
//! Merge (the SDK's [`SharedMerge`]) unions every package's collection and
//! requires agreeing `version`s.
//! Managed: one container with a named volume, ready when `/readyz` answers.
//! External: the profile's URL and API key. Every consumer gets `QDRANT_URL`,
//! `QDRANT_API_KEY` where one is set, and `QDRANT_COLLECTION` (its own).

use hsm_sdk::*;

/// The plugin.
pub struct Qdrant;

const CONTAINER: &str = "server";
const HTTP: u16 = 6333;

impl Backend for Qdrant {
    fn describe() -> PluginInfo {
        PluginInfo::new("qdrant", env!("CARGO_PKG_VERSION"), ["qdrant"])
            .param("collection", "The collection this package uses", false)
            .param("version", "The Qdrant version (image tag `v<version>`); all packages must agree", false)
            .param("image", "The image (a tag is added from `version` when it has none)", false)
            .param("port", "A fixed host port for the HTTP API (default: chosen by hsm)", false)
            .param("api_key", "Protect the local server with a generated API key (`true`/`false`)", false)
            .setting("url", "The server's URL, such as `https://xyz.cloud.qdrant.io:6333`", true)
            .setting("api_key", "The API key (use a `${VAR}` reference)", false)
            .capability(Capability::Containers)
            .variable("QDRANT_URL", "The server's HTTP API")
            .variable("QDRANT_API_KEY", "The API key, when the server has one (a secret)")
            .variable("QDRANT_COLLECTION", "The consumer's collection, when it named one")
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        let merged = SharedMerge::new(&Self::describe())
            .per_consumer("collection")
            .check("collection", |v: &Value| match v.as_str() {
                Some(name) if valid_collection(name) => Ok(v.clone()),
                _ => Err("`collection` must be a plain name of letters, digits, `-` and `_`"),
            })
            .merge(&req)?;
        let collections = merged.values("collection");
        let mut config = merged.config;
        config.insert("collections", Value::List(collections));
        Ok(Value::Map(config))
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        let mut plan = Plan::new();
        let (url, api_key) = match req.profile.mode {
            Mode::Managed => {
                let image = image(&req)?;
                let with_key = req.param("api_key").and_then(Value::as_bool).unwrap_or(false);
                let mut server = Container::new(CONTAINER, image).volume("storage", "/qdrant/storage");
                server = match req.param("port").map(|p| p.as_int().and_then(|p| u16::try_from(p).ok())) {
                    Some(Some(port)) => server.port_on(HTTP, port),
                    Some(None) => return Err(PlanError::at("port", "`port` must be a number from 1 to 65535")),
                    None => server.port(HTTP),
                };
                let key = with_key.then(|| Text::generated("api-key"));
                if let Some(key) = &key {
                    server = server.env("QDRANT__SERVICE__API_KEY", key.clone());
                }
                plan.action(server);
                plan.action(Wait::new(Probe::Http(HttpProbe::new(CONTAINER, HTTP, "/readyz"))));
                (req.published(CONTAINER, HTTP).url("http"), key)
            }
            Mode::External => {
                req.check_settings(&Self::describe())?;
                (req.url_setting("url")?, req.profile.settings.get_text("api_key").cloned())
            }
        };
        let default_collection = req
            .config
            .get("collections")
            .and_then(Value::as_list)
            .and_then(|l| l.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        for consumer in &req.consumers {
            plan.env(consumer, "QDRANT_URL", url.clone());
            if let Some(key) = &api_key {
                plan.env(consumer, "QDRANT_API_KEY", key.clone());
            }
            let collection = consumer.params.get_str("collection").map(str::to_string).or(default_collection.clone());
            if let Some(collection) = collection {
                plan.env(consumer, "QDRANT_COLLECTION", collection);
            }
        }
        Ok(plan)
    }
}

fn image(req: &PlanRequest) -> Result<String, PlanError> {
    let image = req.param("image").and_then(Value::as_str).unwrap_or("qdrant/qdrant");
    let version = req.param("version").and_then(Value::to_text).and_then(|t| t.as_plain().map(str::to_string));
    image_with_tag(image, version.map(|v| format!("v{}", v.trim_start_matches('v'))).as_deref())
        .ok_or_else(|| PlanError::at("version", "`image` has no tag, so `version` is needed to pick one"))
}

fn valid_collection(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

export_plugin!(Qdrant);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    fn collection(name: &str) -> Value {
        Value::map([("collection", name.into())])
    }

    #[test]
    fn merge_unions_collections_and_checks_versions() {
        let req = merge_request("vector-db", "qdrant")
            .defaults(Value::map([("version", "1.12.4".into())]))
            .contribution("rag-api", collection("docs"))
            .contribution("search", collection("docs"))
            .contribution("ingest", collection("raw"))
            .build();
        let merged = Qdrant::merge(req).unwrap();
        assert_eq!(merged.get("collections"), Some(&Value::from(vec!["docs", "raw"])));

        let req = merge_request("vector-db", "qdrant")
            .contribution("a", Value::map([("version", "1.12".into())]))
            .contribution("b", Value::map([("version", "1.11".into())]))
            .build();
        assert!(matches!(Qdrant::merge(req), Err(MergeError::Conflict { key, .. }) if key == "version"));
    }

    #[test]
    fn managed_runs_one_container_and_hands_out_its_url() {
        let config = Value::map([("version", "1.12.4".into()), ("collections", Value::from(vec!["docs"]))]);
        let plan =
            Qdrant::plan(plan_request("vector-db", "qdrant", config).consumer("rag-api", collection("docs")).build())
                .unwrap();
        let Action::EnsureContainer(server) = &plan.actions[0] else { panic!("expected a container") };
        assert_eq!(server.image, "qdrant/qdrant:v1.12.4");
        assert!(matches!(&plan.actions[1], Action::Wait(Wait { probe: Probe::Http(h), .. }) if h.path == "/readyz"));
        let env = plan.env_of(Some("rag-api")).unwrap();
        assert_eq!(env[0].1.to_string(), "http://127.0.0.1:${hsm:port:server:6333}");
        assert_eq!(env[1], ("QDRANT_COLLECTION".to_string(), Text::lit("docs")));
    }

    #[test]
    fn external_injects_url_and_key_and_starts_nothing() {
        let settings = Value::map([("url", "https://xyz.cloud.example:6333".into()), ("api_key", secret(2).into())]);
        let req = plan_request("vector-db", "qdrant", Value::map([("collections", Value::from(vec!["docs"]))]))
            .external("external-prod", settings)
            .consumer("rag-api", collection("docs"))
            .build();
        let plan = Qdrant::plan(req).unwrap();
        assert!(plan.actions.is_empty());
        let env = plan.env_of(Some("rag-api")).unwrap();
        assert_eq!(env[0].1.to_string(), "https://xyz.cloud.example:6333");
        assert_eq!(env[1], ("QDRANT_API_KEY".to_string(), secret(2)));
    }
}
