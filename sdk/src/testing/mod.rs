//! Builders for testing a plugin's logic natively, without WebAssembly: make the
//! requests the host would send, call your [`crate::Backend`] methods, and inspect
//! the results.
//!
//! [`build_plugin`] builds a plugin crate for `wasm32-wasip2`; `ComponentPlugin`
//! of the `hsm-sdk-host` crate (in hsm's repository, not published: it embeds
//! hsm's runtime) runs the compiled component in hsm's real runtime with the same
//! requests.
//!
//! ```
//! use hsm_sdk::testing::*;
//! use hsm_sdk::*;
//!
//! let req = merge_request("cache", "redis")
//!     .contribution("api", Value::map([("db", 1.into())]))
//!     .build();
//! assert_eq!(default_merge(&req).unwrap().get("db"), Some(&Value::Int(1)));
//! ```

#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};
#[cfg(not(target_arch = "wasm32"))]
use std::process::Command;

use crate::request::{Consumer, Contribution, MergeRequest, Mode, PlanRequest, Profile, Requester};
use crate::text::{Encoding, Piece, SecretRef, Text};
use crate::value::Value;

/// A secret reference, as the host would hand one to the plugin. Tests use it to
/// check where a plugin places secrets.
pub fn secret(handle: u32) -> Text {
    let mut t = Text::new();
    t.push(Piece::Secret(SecretRef { handle, encoding: Encoding::Raw }));
    t
}

/// Starts a merge request for a service of a kind.
pub fn merge_request(service: &str, kind: &str) -> MergeRequestBuilder {
    MergeRequestBuilder(MergeRequest {
        service: service.into(),
        kind: kind.into(),
        defaults: Value::Null,
        contributions: Vec::new(),
    })
}

/// Builds a [`MergeRequest`].
#[derive(Clone, Debug)]
pub struct MergeRequestBuilder(MergeRequest);

impl MergeRequestBuilder {
    /// Sets the registry's defaults.
    #[must_use]
    pub fn defaults(mut self, defaults: Value) -> Self {
        self.0.defaults = defaults;
        self
    }

    /// Adds what package `package` asks.
    #[must_use]
    pub fn contribution(mut self, package: &str, params: Value) -> Self {
        let origin = format!("registry.yaml:{}:7", self.0.contributions.len() + 1);
        self.0.contributions.push(Contribution { from: Requester::Package(package.into()), origin, params });
        self
    }

    /// Adds what the project itself asks.
    #[must_use]
    pub fn project_contribution(mut self, params: Value) -> Self {
        self.0.contributions.push(Contribution { from: Requester::Project, origin: "hsm.yaml:1:1".into(), params });
        self
    }

    /// The request.
    pub fn build(self) -> MergeRequest {
        self.0
    }
}

/// Starts a plan request for a service with its merged configuration, under a
/// managed profile named `managed-dev`.
pub fn plan_request(service: &str, kind: &str, config: Value) -> PlanRequestBuilder {
    PlanRequestBuilder(PlanRequest {
        project: "demo".into(),
        service: service.into(),
        kind: kind.into(),
        config,
        profile: Profile { name: "managed-dev".into(), mode: Mode::Managed, settings: Value::Null },
        consumers: Vec::new(),
        host_address: "127.0.0.1".into(),
    })
}

/// Builds a [`PlanRequest`].
#[derive(Clone, Debug)]
pub struct PlanRequestBuilder(PlanRequest);

impl PlanRequestBuilder {
    /// Sets the project's name.
    #[must_use]
    pub fn project(mut self, project: &str) -> Self {
        self.0.project = project.into();
        self
    }

    /// Chooses an external profile with these connection settings.
    #[must_use]
    pub fn external(mut self, profile: &str, settings: Value) -> Self {
        self.0.profile = Profile { name: profile.into(), mode: Mode::External, settings };
        self
    }

    /// Chooses a managed profile with these overrides.
    #[must_use]
    pub fn managed(mut self, profile: &str, settings: Value) -> Self {
        self.0.profile = Profile { name: profile.into(), mode: Mode::Managed, settings };
        self
    }

    /// Adds a consuming package and what it asked.
    #[must_use]
    pub fn consumer(mut self, package: &str, params: Value) -> Self {
        self.0.consumers.push(Consumer { package: Some(package.into()), params });
        self
    }

    /// Adds the project itself as a consumer.
    #[must_use]
    pub fn project_consumer(mut self, params: Value) -> Self {
        self.0.consumers.push(Consumer { package: None, params });
        self
    }

    /// The request.
    pub fn build(self) -> PlanRequest {
        self.0
    }
}

/// Builds the plugin crate at `manifest_dir` (package `package`) for
/// `wasm32-wasip2` in release mode and returns the component's path. The build
/// uses a target folder of its own (`target/hsm-components` next to the crate's
/// workspace target), so it doesn't contend with the test build that runs it.
#[cfg(not(target_arch = "wasm32"))]
pub fn build_plugin(manifest_dir: impl AsRef<Path>, package: &str) -> Result<PathBuf, String> {
    let manifest_dir = manifest_dir.as_ref();
    let target_dir = component_target_dir(manifest_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "-p", package, "--target-dir"])
        .arg(&target_dir);
    // Settings meant for the test build (a clippy wrapper, host rustflags) are wrong here.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let outer = key.starts_with("CARGO_") && !matches!(key.as_str(), "CARGO_HOME");
        if outer || matches!(key.as_str(), "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTFLAGS") {
            cmd.env_remove(&key);
        }
    }
    let output = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building `{package}` for wasm32-wasip2 failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
    if path.is_file() { Ok(path) } else { Err(format!("cargo built `{package}` but `{}` is missing", path.display())) }
}

/// `<workspace target>/hsm-components`, found by walking up to the folder that
/// holds `Cargo.lock`.
#[cfg(not(target_arch = "wasm32"))]
fn component_target_dir(manifest_dir: &Path) -> PathBuf {
    let root = manifest_dir.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest_dir);
    root.join("target/hsm-components")
}
