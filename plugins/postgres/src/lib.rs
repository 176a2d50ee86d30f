//! The bundled `postgres` backend: one server shared by every package that asks for
//! a database, each package getting its own database on it.
//!
//! Merge (the SDK's [`SharedMerge`]) unions the `db_name` of every contribution
//! into the database list and requires agreeing `version`s. Managed: one container from the official image
//! with a generated password (derived again on every run, never stored), a named
//! volume, a readiness probe, then an idempotent "create each missing database".
//! External: no container, the profile's connection settings. Every consumer gets
//! `DB_HOST`, `DB_PORT`, `DB_NAME` (its own), `DB_USER`, `DB_PASSWORD` and
//! `DATABASE_URL`.

use hsm_sdk::*;

/// The plugin.
pub struct Postgres;

const SETTINGS: &[&str] = &["host", "port", "user", "password", "sslmode", "db_name"];
const CONTAINER: &str = "server";
const PORT: u16 = 5432;
const DATA: &str = "/var/lib/postgresql/data";

/// Creates every database of `$DB_LIST` that doesn't exist yet; safe to run again.
const CREATE_DATABASES: &str = r#"set -eu
for db in $(printf '%s' "$DB_LIST" | tr ',' ' '); do
  exists=$(psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$POSTGRES_USER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
  if [ "$exists" != "1" ]; then
    psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$db\""
  fi
done"#;

impl Backend for Postgres {
    fn describe() -> PluginInfo {
        PluginInfo::new("postgres", env!("CARGO_PKG_VERSION"), ["postgres"])
            .param("db_name", "The database this package uses; each package gets its own", false)
            .param("version", "The PostgreSQL major version; all packages must agree", false)
            .param("image", "The image (a tag is added from `version` when it has none)", false)
            .param("user", "The superuser's name (default `postgres`)", false)
            .param("port", "A fixed host port (default: chosen by hsm and kept stable)", false)
            .setting("host", "The server's host name or address", true)
            .setting("port", "The server's port (default 5432)", false)
            .setting("user", "The user to connect as", true)
            .setting("password", "The user's password (use a `${VAR}` reference)", false)
            .setting("sslmode", "Added to `DATABASE_URL` as `?sslmode=`", false)
            .capability(Capability::Containers)
            .capability(Capability::Exec)
            .variable("DB_HOST", "The server's host name or address")
            .variable("DB_PORT", "The server's port")
            .variable("DB_NAME", "The consumer's database")
            .variable("DB_USER", "The user to connect as")
            .variable("DB_PASSWORD", "The user's password (a secret)")
            .variable("DATABASE_URL", "All of the above as one `postgresql://` URL")
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        let merged = SharedMerge::new(&Self::describe())
            .per_consumer("db_name")
            .check("db_name", |v: &Value| identifier("db_name", v))
            .check("user", |v: &Value| identifier("user", v))
            .merge(&req)?;
        let databases = merged.values("db_name");
        let mut config = merged.config;
        config.remove("db_name");
        let list: Vec<&str> = databases.iter().filter_map(Value::as_str).collect();
        config.insert("db_list", Value::from(list.join(",")));
        config.insert("databases", Value::List(databases));
        Ok(Value::Map(config))
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        match req.profile.mode {
            Mode::Managed => plan_managed(&req),
            Mode::External => plan_external(&req),
        }
    }
}

fn plan_managed(req: &PlanRequest) -> Result<Plan, PlanError> {
    let user = req.param("user").and_then(Value::as_str).unwrap_or("postgres").to_string();
    let image = image(req)?;
    let password = Text::generated("password");
    let mut server = Container::new(CONTAINER, image)
        .env("POSTGRES_USER", user.as_str())
        .env("POSTGRES_PASSWORD", password.clone())
        .env("PGDATA", DATA)
        .volume("data", DATA);
    server = match req.param("port") {
        Some(port) => {
            let port = port.as_int().and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
            server.port_on(PORT, port.ok_or_else(|| PlanError::at("port", "`port` must be a number from 1 to 65535"))?)
        }
        None => server.port(PORT),
    };
    let mut plan = Plan::new();
    plan.action(server);
    // TCP through the container's own loopback: the official image's init server
    // listens on the socket only, so this succeeds once the real server is up.
    let ready = Exec::new(CONTAINER, ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", user.as_str()]);
    plan.action(Wait::new(Probe::Exec(ready)).timeout_ms(120_000));
    let databases = req.config.get_str("db_list").unwrap_or_default().to_string();
    if !databases.is_empty() {
        // Over TCP to the container's loopback, with the password, as any user: the
        // command means the same wherever the server's network namespace is shared
        // (an exported stack runs it in a container of its own).
        let create = Exec::new(CONTAINER, ["sh", "-c", CREATE_DATABASES])
            .env("DB_LIST", databases)
            .env("PGPASSWORD", password.clone());
        plan.action(create);
    }
    let host = Text::lit(req.host_address.as_str());
    let port = Text::host_port(CONTAINER, PORT);
    for consumer in &req.consumers {
        let db = db_name(req, &consumer.params, &user);
        let url = text!(
            "postgresql://",
            Text::lit(user.as_str()).url_encoded(),
            ":",
            password.clone().url_encoded(),
            "@",
            host.clone().url_host(),
            ":",
            port.clone(),
            "/",
            Text::lit(db.as_str()).url_encoded()
        );
        set_env(&mut plan, consumer, &host, &port, &db, &Text::lit(user.as_str()), Some(&password), url);
    }
    Ok(plan)
}

fn plan_external(req: &PlanRequest) -> Result<Plan, PlanError> {
    let settings = &req.profile.settings;
    if let Some(key) = settings.unknown_keys(SETTINGS).first() {
        return Err(PlanError::at(*key, unknown_setting(key)));
    }
    let host = setting(settings, "host")?.ok_or_else(|| missing("host", &req.profile.name))?;
    let user = setting(settings, "user")?.ok_or_else(|| missing("user", &req.profile.name))?;
    let port = setting(settings, "port")?.unwrap_or_else(|| Text::lit(PORT.to_string()));
    let password = setting(settings, "password")?;
    let sslmode = setting(settings, "sslmode")?;
    let mut plan = Plan::new();
    for consumer in &req.consumers {
        let default_db = settings.get_str("db_name").unwrap_or("postgres");
        let db = db_name(req, &consumer.params, default_db);
        // User, password and database are encoded whole, literal parts and
        // secrets alike: a password `a@b` or `${PASS}` holding `p:w/d` stays one.
        let mut url = text!("postgresql://", user.clone().url_encoded());
        if let Some(password) = &password {
            url = url + ":" + password.clone().url_encoded();
        }
        url = url + "@" + host.clone().url_host() + ":" + port.clone() + "/" + Text::lit(db.as_str()).url_encoded();
        if let Some(mode) = &sslmode {
            url = url + "?sslmode=" + mode.clone().url_encoded();
        }
        set_env(&mut plan, consumer, &host, &port, &db, &user, password.as_ref(), url);
    }
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
fn set_env(
    plan: &mut Plan,
    consumer: &Consumer,
    host: &Text,
    port: &Text,
    db: &str,
    user: &Text,
    password: Option<&Text>,
    url: Text,
) {
    plan.env(consumer, "DB_HOST", host.clone());
    plan.env(consumer, "DB_PORT", port.clone());
    plan.env(consumer, "DB_NAME", db);
    plan.env(consumer, "DB_USER", user.clone());
    if let Some(password) = password {
        plan.env(consumer, "DB_PASSWORD", password.clone());
    }
    plan.env(consumer, "DATABASE_URL", url);
}

/// The consumer's own database, else the first of the merged list, else `fallback`.
fn db_name(req: &PlanRequest, params: &Value, fallback: &str) -> String {
    params
        .get_str("db_name")
        .or_else(|| {
            req.config.get("databases").and_then(Value::as_list).and_then(|l| l.first()).and_then(Value::as_str)
        })
        .unwrap_or(fallback)
        .to_string()
}

fn image(req: &PlanRequest) -> Result<String, PlanError> {
    let image = req.param("image").and_then(Value::as_str).unwrap_or("postgres");
    let version = req.param("version").and_then(Value::to_text).and_then(|t| t.as_plain().map(str::to_string));
    image_with_tag(image, version.as_deref())
        .ok_or_else(|| PlanError::at("version", "`image` has no tag, so `version` is needed to pick one"))
}

fn setting(settings: &Value, key: &str) -> Result<Option<Text>, PlanError> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.to_text().map(Some).ok_or_else(|| PlanError::at(key, format!("`{key}` must be a string or a number")))
        }
    }
}

fn missing(key: &str, profile: &str) -> PlanError {
    PlanError::at(key, format!("profile `{profile}` gives no `{key}` for this postgres service"))
}

/// A database or user name: a plain string of lowercase letters, digits and `_`.
fn identifier(key: &str, value: &Value) -> Result<Value, String> {
    let name = value.as_str().ok_or_else(|| format!("`{key}` must be a plain string"))?;
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(value.clone())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lowercase letters, digits and `_`, starting with a letter, at most 63"
        ))
    }
}

fn unknown_setting(key: &str) -> String {
    format!("unknown setting `{key}`; postgres reads {}", list(SETTINGS))
}

fn list(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

export_plugin!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    fn defaults() -> Value {
        Value::map([("version", "16".into()), ("image", "postgres".into())])
    }

    fn db(name: &str) -> Value {
        Value::map([("db_name", name.into())])
    }

    fn env_of<'a>(plan: &'a Plan, package: &str) -> Vec<(&'a str, String)> {
        plan.env_of(Some(package)).unwrap().iter().map(|(k, v)| (k.as_str(), v.to_string())).collect()
    }

    #[test]
    fn merge_unions_databases_into_one_list() {
        let req = merge_request("postgres", "postgres")
            .defaults(defaults())
            .contribution("auth-service", db("auth"))
            .contribution("billing-service", db("billing"))
            .contribution("audit", db("auth"))
            .build();
        let merged = Postgres::merge(req).unwrap();
        assert_eq!(merged.get_str("db_list"), Some("auth,billing"));
        assert_eq!(merged.get_str("version"), Some("16"));
    }

    #[test]
    fn a_package_implying_postgres_twice_gets_both_databases() {
        let req = merge_request("postgres", "postgres")
            .defaults(defaults())
            .contribution("app", db("app"))
            .contribution("app", db("app_test"))
            .build();
        assert_eq!(Postgres::merge(req).unwrap().get_str("db_list"), Some("app,app_test"));
    }

    #[test]
    fn merge_names_both_sides_of_a_version_conflict() {
        let req = merge_request("postgres", "postgres")
            .defaults(defaults())
            .contribution("auth-service", Value::map([("db_name", "auth".into()), ("version", "16".into())]))
            .contribution("billing-service", Value::map([("db_name", "billing".into()), ("version", Value::Int(15))]))
            .build();
        match Postgres::merge(req).unwrap_err() {
            MergeError::Conflict { key, contributions, message, .. } => {
                assert_eq!(key, "version");
                assert_eq!(contributions, [0, 1]);
                assert_eq!(message, "`version` differs: `auth-service` asks `16`, `billing-service` asks `15`");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn merge_rejects_unknown_params_and_bad_names() {
        let req = merge_request("postgres", "postgres").contribution("a", Value::map([("db", "x".into())])).build();
        assert_eq!(
            Postgres::merge(req).unwrap_err(),
            MergeError::invalid(
                "unknown parameter `db`; postgres reads `db_name`, `version`, `image`, `user`, `port`",
                "db",
                Some(0)
            )
        );
        let req = merge_request("postgres", "postgres").contribution("a", db("Robert'); DROP")).build();
        assert!(matches!(Postgres::merge(req), Err(MergeError::Invalid { key, .. }) if key == "db_name"));
    }

    #[test]
    fn managed_plan_is_one_container_and_each_package_its_database() {
        let merged = Postgres::merge(
            merge_request("postgres", "postgres")
                .defaults(defaults())
                .contribution("auth-service", db("auth"))
                .contribution("billing-service", db("billing"))
                .build(),
        )
        .unwrap();
        let req = plan_request("postgres", "postgres", merged)
            .consumer("auth-service", db("auth"))
            .consumer("billing-service", db("billing"))
            .build();
        let plan = Postgres::plan(req).unwrap();
        let containers: Vec<_> = plan
            .actions
            .iter()
            .filter_map(|a| if let Action::EnsureContainer(c) = a { Some(c) } else { None })
            .collect();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].image, "postgres:16");
        assert_eq!(containers[0].ports[0].host_port, None);
        assert!(
            containers[0]
                .env
                .iter()
                .any(|(k, v)| k == "POSTGRES_PASSWORD" && v.to_string() == "${hsm:generated:password}")
        );
        assert!(matches!(plan.actions[1], Action::Wait(_)));
        let Action::Exec(create) = &plan.actions[2] else { panic!("expected the database creation") };
        assert_eq!(create.env[0], ("DB_LIST".to_string(), Text::lit("auth,billing")));
        assert_eq!(create.env[1], ("PGPASSWORD".to_string(), Text::generated("password")));
        assert_eq!(create.user, None);
        assert_eq!(
            env_of(&plan, "auth-service"),
            [
                ("DB_HOST", "127.0.0.1".to_string()),
                ("DB_PORT", "${hsm:port:server:5432}".to_string()),
                ("DB_NAME", "auth".to_string()),
                ("DB_USER", "postgres".to_string()),
                ("DB_PASSWORD", "${hsm:generated:password}".to_string()),
                (
                    "DATABASE_URL",
                    "postgresql://postgres:${hsm:generated:password}@127.0.0.1:${hsm:port:server:5432}/auth"
                        .to_string()
                ),
            ]
        );
        assert_eq!(env_of(&plan, "billing-service")[2], ("DB_NAME", "billing".to_string()));
    }

    #[test]
    fn external_plan_starts_nothing_and_injects_settings() {
        let settings = Value::map([
            ("host", "10.0.0.50".into()),
            ("port", Value::Int(5432)),
            ("user", "app".into()),
            ("password", secret(0).into()),
        ]);
        let req = plan_request("postgres", "postgres", Value::map([("db_list", "auth,billing".into())]))
            .external("external-corp", settings)
            .consumer("auth-service", db("auth"))
            .consumer("billing-service", db("billing"))
            .build();
        let plan = Postgres::plan(req).unwrap();
        assert!(plan.actions.is_empty());
        let auth = env_of(&plan, "auth-service");
        assert_eq!(auth[0], ("DB_HOST", "10.0.0.50".to_string()));
        assert_eq!(auth[1], ("DB_PORT", "5432".to_string()));
        assert_eq!(auth[2], ("DB_NAME", "auth".to_string()));
        assert_eq!(auth[4], ("DB_PASSWORD", "${hsm:secret:0}".to_string()));
        assert_eq!(auth[5], ("DATABASE_URL", "postgresql://app:${hsm:secret:0}@10.0.0.50:5432/auth".to_string()));
        // The password is percent-encoded inside the URL, raw in DB_PASSWORD.
        let url = &plan.env_of(Some("auth-service")).unwrap()[5].1;
        assert_eq!(url.pieces()[1], secret(0).url_encoded().pieces()[0]);
        assert_eq!(plan.env_of(Some("auth-service")).unwrap()[4].1, secret(0));
        assert_eq!(env_of(&plan, "billing-service")[2], ("DB_NAME", "billing".to_string()));
    }

    /// A user and password are encoded whole in the URL, literal parts and
    /// secrets alike; an IPv6 host gets brackets; the separate variables stay raw.
    #[test]
    fn external_url_encodes_user_password_and_database_whole() {
        let password = Text::concat([Text::lit("a@b:c/ d"), secret(0), Text::lit("?#%é")]);
        let settings = Value::map([
            ("host", "fd00::5".into()),
            ("user", "me@corp".into()),
            ("password", Value::Text(password.clone())),
            ("sslmode", "verify full".into()),
        ]);
        let req = plan_request("postgres", "postgres", Value::Null)
            .external("external-corp", settings)
            .consumer("auth-service", db("my db"))
            .build();
        let plan = Postgres::plan(req).unwrap();
        let env = env_of(&plan, "auth-service");
        assert_eq!(
            env[5],
            (
                "DATABASE_URL",
                "postgresql://me%40corp:a%40b%3Ac%2F%20d${hsm:secret:0}%3F%23%25%C3%A9@[fd00::5]:5432/my%20db?sslmode=verify%20full"
                    .to_string()
            )
        );
        let url = &plan.env_of(Some("auth-service")).unwrap()[5].1;
        assert!(url.pieces().contains(&secret(0).url_encoded().pieces()[0]), "the secret is encoded by the host");
        assert_eq!(env[0], ("DB_HOST", "fd00::5".to_string()));
        assert_eq!(env[3], ("DB_USER", "me@corp".to_string()));
        assert_eq!(plan.env_of(Some("auth-service")).unwrap()[4].1, password);
    }

    #[test]
    fn external_plan_requires_host_and_user() {
        let req = plan_request("postgres", "postgres", Value::Null)
            .external("external-corp", Value::map([("user", "app".into())]))
            .build();
        assert_eq!(
            Postgres::plan(req).unwrap_err(),
            PlanError::at("host", "profile `external-corp` gives no `host` for this postgres service")
        );
    }

    #[test]
    fn consumers_can_rename_their_variables() {
        let params = Value::map([
            ("db_name", "auth".into()),
            (ENV_NAMES, Value::map([("DATABASE_URL", "AUTH_DB_URL".into()), ("DB_PASSWORD", Value::Null)])),
        ]);
        let req = plan_request("postgres", "postgres", Value::map([("version", "16".into())]))
            .consumer("auth-service", params)
            .build();
        let plan = Postgres::plan(req).unwrap();
        let names: Vec<_> = env_of(&plan, "auth-service").into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "AUTH_DB_URL"]);
    }
}
