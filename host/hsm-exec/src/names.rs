//! How hsm names what it creates on the Docker engine and the labels that say who
//! owns it. Labels, never names, decide what hsm may touch: a name pattern can be
//! shared by two projects (`a` + service `b-c` and `a-b` + service `c`), the pair
//! of labels `dev.hsm.project` and `dev.hsm.project-dir` cannot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The project a resource belongs to.
pub const LABEL_PROJECT: &str = "dev.hsm.project";
/// The absolute folder of that project: two projects with one name in different
/// folders are different projects.
pub const LABEL_PROJECT_DIR: &str = "dev.hsm.project-dir";
/// The service a container or volume belongs to.
pub const LABEL_SERVICE: &str = "dev.hsm.service";
/// The container's short name within its service.
pub const LABEL_CONTAINER: &str = "dev.hsm.container";
/// The hash of everything that defines a container; a different hash means the
/// container must be recreated.
pub const LABEL_CONFIG_HASH: &str = "dev.hsm.config-hash";
/// The volume's short name within its service.
pub const LABEL_VOLUME: &str = "dev.hsm.volume";

/// A project as the Docker engine sees it: a name and the folder that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectId {
    /// The project's name (from `hsm.yaml`).
    pub name: String,
    /// The folder holding `hsm.yaml`, absolute and canonical.
    pub dir: PathBuf,
}

impl ProjectId {
    /// The project `name` in `dir`; the folder is made canonical when it exists, so
    /// that a symlinked path names the same project.
    pub fn new(name: impl Into<String>, dir: &Path) -> Self {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self { name: name.into(), dir }
    }

    /// The folder as the label's value.
    pub fn dir_label(&self) -> String {
        self.dir.display().to_string()
    }

    /// The folder of hsm's files in the project (`.hsm/`).
    pub fn hsm_dir(&self) -> PathBuf {
        self.dir.join(".hsm")
    }

    /// The project's network.
    pub fn network(&self) -> String {
        format!("{}-hsm", self.name)
    }

    /// A container's name: `{project}-{service}-{container}`.
    pub fn container(&self, service: &str, container: &str) -> String {
        format!("{}-{service}-{container}", self.name)
    }

    /// A volume's name: `{project}-{service}-{volume}`.
    pub fn volume(&self, service: &str, volume: &str) -> String {
        format!("{}-{service}-{volume}", self.name)
    }

    /// The labels every resource of the project carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_PROJECT.to_string(), self.name.clone()),
            (LABEL_PROJECT_DIR.to_string(), self.dir_label()),
        ])
    }

    /// Whether a resource with these labels belongs to this project.
    pub fn owns(&self, labels: Option<&HashMap<String, String>>) -> bool {
        labels.is_some_and(|l| {
            l.get(LABEL_PROJECT) == Some(&self.name) && l.get(LABEL_PROJECT_DIR) == Some(&self.dir_label())
        })
    }
}

/// Who owns a resource, from its labels, for error messages: the project's name
/// and folder, or nothing when hsm did not create it.
pub fn owner(labels: Option<&HashMap<String, String>>) -> Option<(String, String)> {
    let labels = labels?;
    Some((labels.get(LABEL_PROJECT)?.clone(), labels.get(LABEL_PROJECT_DIR).cloned().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_patterns() {
        let p = ProjectId { name: "shop".into(), dir: "/src/shop".into() };
        assert_eq!(p.container("postgres", "server"), "shop-postgres-server");
        assert_eq!(p.volume("postgres", "data"), "shop-postgres-data");
        assert_eq!(p.network(), "shop-hsm");
    }

    #[test]
    fn ownership_needs_both_the_name_and_the_folder() {
        let p = ProjectId { name: "shop".into(), dir: "/src/shop".into() };
        assert!(p.owns(Some(&p.labels())));
        let other = ProjectId { name: "shop".into(), dir: "/elsewhere/shop".into() };
        assert!(!p.owns(Some(&other.labels())));
        assert!(!p.owns(None));
        assert_eq!(owner(Some(&other.labels())), Some(("shop".into(), "/elsewhere/shop".into())));
    }
}
