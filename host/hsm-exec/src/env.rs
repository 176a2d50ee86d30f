//! The environment a package gets: the plan's variables for that consumer, with
//! host ports from the state, generated secrets from the user's key and secrets
//! from the environment or `.env`.
//!
//! Two forms: [`shown`] keeps every secret a reference (`${CORP_DB_PASSWORD}`,
//! `${hsm:generated:password}`) and is safe to print anywhere; [`values`] gives the
//! values, as [`Sensitive`], for a process's environment or an explicit
//! `--reveal`.

use hsm_key::UserKey;
use hsm_model::{Piece, ResolveRefs, SecretStore, Sensitive, Text};
use hsm_plan::{Consumer, Plan};

use crate::names::ProjectId;
use crate::refs::ServiceRefs;
use crate::state::State;

/// What a consumer's environment is resolved with.
pub struct EnvContext<'a> {
    /// The project.
    pub project: &'a ProjectId,
    /// The user's key.
    pub key: &'a UserKey,
    /// The secrets read in this run.
    pub secrets: &'a SecretStore,
    /// The state (host ports).
    pub state: &'a State,
}

/// Why a consumer's environment can't be given.
#[derive(Debug, thiserror::Error)]
#[error("`{name}` from service `{service}`: {message}")]
pub struct EnvError {
    /// The variable.
    pub name: String,
    /// The service it comes from.
    pub service: String,
    /// Why.
    pub message: String,
}

/// The message says what to do (`run `hsm sync``, say): no hint of its own.
impl hsm_model::Explain for EnvError {}

/// The consumer's variables with secrets as references; host ports are filled in
/// when known (they are not secret), else shown as `${hsm:port:…}`.
pub fn shown(plan: &Plan, consumer: &Consumer, cx: &EnvContext<'_>) -> Vec<(String, String)> {
    plan.env_of(consumer)
        .into_iter()
        .map(|(name, text, service)| {
            let refs = ServiceRefs::new(cx.key, &cx.project.dir, &cx.project.name, service, cx.state);
            (name.to_string(), show(text, &refs))
        })
        .collect()
}

fn show(text: &Text, refs: &dyn ResolveRefs) -> String {
    let mut out = String::new();
    for piece in text.pieces() {
        match piece {
            Piece::HostPort { container, port } => match refs.host_port(container, *port) {
                Ok(p) => out.push_str(&p.to_string()),
                Err(_) => out.push_str(&Text::from_pieces([piece.clone()]).display()),
            },
            other => out.push_str(&Text::from_pieces([other.clone()]).display()),
        }
    }
    out
}

/// The consumer's variables with their values.
pub fn values(plan: &Plan, consumer: &Consumer, cx: &EnvContext<'_>) -> Result<Vec<(String, Sensitive)>, EnvError> {
    plan.env_of(consumer)
        .into_iter()
        .map(|(name, text, service)| {
            let refs = ServiceRefs::new(cx.key, &cx.project.dir, &cx.project.name, service, cx.state);
            let value = text.expose(cx.secrets, &refs).map_err(|message| EnvError {
                name: name.to_string(),
                service: service.to_string(),
                message,
            })?;
            Ok((name.to_string(), value))
        })
        .collect()
}

/// Whether every managed service the consumer uses has been synced (has host ports
/// for what its env refers to).
pub fn unsynced_services<'p>(plan: &'p Plan, consumer: &Consumer, cx: &EnvContext<'_>) -> Vec<&'p str> {
    let mut out: Vec<&str> = Vec::new();
    for (_, text, service) in plan.env_of(consumer) {
        let refs = ServiceRefs::new(cx.key, &cx.project.dir, &cx.project.name, service, cx.state);
        let missing = text.pieces().iter().any(|p| match p {
            Piece::HostPort { container, port } => refs.host_port(container, *port).is_err(),
            _ => false,
        });
        if missing && !out.contains(&service) {
            out.push(service);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use hsm_model::{Encoding, SecretId};
    use hsm_plan::{ConsumerEnv, Mode, ServicePlan};

    use super::*;

    #[test]
    fn references_stay_references_and_ports_are_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let key = UserKey::load_or_create(&dir.path().join("k")).unwrap();
        let project = ProjectId::new("shop", dir.path());
        let mut secrets = SecretStore::new();
        let id: SecretId = secrets.insert(Sensitive::new("s3cr3t".into()));
        let consumer = Consumer::Package("auth".into());
        let vars = vec![
            ("DB_PORT".to_string(), Text::from_pieces([Piece::HostPort { container: "server".into(), port: 5432 }])),
            (
                "DB_PASSWORD".to_string(),
                Text::from_pieces([Piece::Generated { name: "password".into(), encoding: Encoding::Raw }]),
            ),
            (
                "API_KEY".to_string(),
                Text::from_pieces([Piece::Secret { id, label: "${KEY}".into(), encoding: Encoding::Raw }]),
            ),
            ("COST".to_string(), Text::literal("$5")),
        ];
        let plan = Plan {
            project: "shop".into(),
            services: vec![ServicePlan {
                name: "postgres".into(),
                kind: "postgres".into(),
                plugin: "postgres@0.1.0".into(),
                profile: "managed-dev".into(),
                mode: Mode::Managed,
                merged: hsm_model::Value::Null,
                actions: vec![],
                env: vec![ConsumerEnv { consumer: consumer.clone(), vars }],
            }],
            tasks: Vec::new(),
        };
        let mut state = State::new(&project);
        let cx = EnvContext { project: &project, key: &key, secrets: &secrets, state: &state };
        assert_eq!(unsynced_services(&plan, &consumer, &cx), vec!["postgres"]);
        assert!(values(&plan, &consumer, &cx).is_err());
        state.container_mut("postgres", "server").ports.insert("5432/tcp".into(), 49_152);
        let cx = EnvContext { project: &project, key: &key, secrets: &secrets, state: &state };
        let shown = shown(&plan, &consumer, &cx);
        assert_eq!(
            shown,
            vec![
                ("DB_PORT".to_string(), "49152".to_string()),
                ("DB_PASSWORD".to_string(), "${hsm:generated:password}".to_string()),
                ("API_KEY".to_string(), "${KEY}".to_string()),
                ("COST".to_string(), "$$5".to_string()),
            ]
        );
        let values = values(&plan, &consumer, &cx).unwrap();
        assert_eq!(values[0].1.expose(), "49152");
        assert_eq!(values[1].1.expose(), key.generated(&project.dir, "shop", "postgres", "password").expose());
        assert_eq!(values[2].1.expose(), "s3cr3t");
        assert_eq!(values[3].1.expose(), "$5");
    }
}
