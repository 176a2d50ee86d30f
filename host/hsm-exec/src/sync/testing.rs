//! Plans for the unit tests of the sync modules.

use hsm_model::Text;
use hsm_plan::{Action, Container, Endpoint, Probe, ServicePlan, Wait};

pub(crate) fn service(name: &str, mode: hsm_plan::Mode, actions: Vec<Action>) -> ServicePlan {
    ServicePlan {
        name: name.into(),
        kind: "k".into(),
        plugin: "k@1".into(),
        profile: "p".into(),
        mode,
        merged: hsm_model::Value::Null,
        actions,
        env: Vec::new(),
    }
}

pub(crate) fn wait_for_address() -> Action {
    Action::Wait(Wait {
        probe: Probe::Tcp { endpoint: Endpoint::Address { host: Text::from("127.0.0.1"), port: Text::from("1") } },
        timeout_ms: 1000,
        interval_ms: 100,
    })
}

/// An action ensuring a container with nothing but a name and an image.
pub(crate) fn bare_container(name: &str) -> Action {
    Action::EnsureContainer(Container {
        name: name.into(),
        image: "i".into(),
        command: None,
        env: Vec::new(),
        ports: Vec::new(),
        mounts: Vec::new(),
        restart: hsm_plan::RestartPolicy::No,
        init: false,
        stop_signal: None,
    })
}
