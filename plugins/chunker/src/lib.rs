//! The bundled `chunker` backend: a text-chunking HTTP service run from the image the
//! registry names, health-checked before anyone gets its URL. Consumers get
//! `CHUNKER_URL`.

use hsm_sdk::*;

/// The plugin.
pub struct Chunker;

const CONTAINER: &str = "server";

impl Backend for Chunker {
    fn describe() -> PluginInfo {
        PluginInfo::new("chunker", env!("CARGO_PKG_VERSION"), ["chunker"])
            .param("image", "The chunker image, with its tag", true)
            .param("port", "The port the service listens on inside the container (default 8000)", false)
            .param("health_path", "The path that answers 2xx when the service is ready (default `/health`)", false)
            .param("env", "Environment variables for the container (a map)", false)
            .setting("url", "The URL of a chunker running elsewhere", true)
            .capability(Capability::Containers)
            .variable("CHUNKER_URL", "The chunker's base URL")
    }

    /// Every parameter is the server's: contributions must agree on each.
    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        SharedMerge::new(&Self::describe()).merge(&req).map(Value::from)
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        let mut plan = Plan::new();
        let url = match req.profile.mode {
            Mode::Managed => {
                let image = req
                    .param("image")
                    .and_then(Value::as_str)
                    .ok_or_else(|| PlanError::at("image", "the chunker needs an `image` (set it in the registry)"))?;
                let port = match req.param("port") {
                    None => 8000,
                    Some(p) => p
                        .as_int()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| PlanError::at("port", "`port` must be a number from 1 to 65535"))?,
                };
                let mut server = Container::new(CONTAINER, image).port(port);
                if let Some(env) = req.param("env") {
                    let env = env.as_map().ok_or_else(|| PlanError::at("env", "`env` must be a map"))?;
                    for (name, value) in env.iter() {
                        let value = value.to_text().ok_or_else(|| {
                            PlanError::at("env", format!("`env.{name}` must be a string or a number"))
                        })?;
                        server = server.env(name, value);
                    }
                }
                plan.action(server);
                plan.action(Wait::new(Probe::Http(HttpProbe::new(
                    CONTAINER,
                    port,
                    req.param("health_path").and_then(Value::as_str).unwrap_or("/health").to_string(),
                ))));
                req.published(CONTAINER, port).url("http")
            }
            Mode::External => req.url_setting("url")?,
        };
        for consumer in &req.consumers {
            plan.env(consumer, "CHUNKER_URL", url.clone());
        }
        Ok(plan)
    }
}

export_plugin!(Chunker);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    #[test]
    fn managed_chunker_is_health_checked_before_its_url_is_given() {
        let config = Value::map([("image", "example/chunker:1.4".into()), ("port", Value::Int(9000))]);
        let plan =
            Chunker::plan(plan_request("chunker", "chunker", config).consumer("rag-api", Value::Null).build()).unwrap();
        let Action::EnsureContainer(server) = &plan.actions[0] else { panic!("expected a container") };
        assert_eq!(server.image, "example/chunker:1.4");
        assert_eq!(server.ports[0].container_port, 9000);
        assert!(matches!(&plan.actions[1], Action::Wait(Wait { probe: Probe::Http(h), .. }) if h.path == "/health"));
        assert_eq!(plan.env_of(Some("rag-api")).unwrap()[0].1.to_string(), "http://127.0.0.1:${hsm:port:server:9000}");
    }

    #[test]
    fn managed_chunker_needs_an_image() {
        let err =
            Chunker::plan(plan_request("chunker", "chunker", Value::map([("port", 1.into())])).build()).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("image"));
    }

    #[test]
    fn unknown_parameters_are_named() {
        let req =
            merge_request("chunker", "chunker").contribution("rag-api", Value::map([("imagee", "x".into())])).build();
        assert!(
            matches!(Chunker::merge(req), Err(MergeError::Invalid { key, contribution: Some(0), .. }) if key == "imagee")
        );
    }
}
