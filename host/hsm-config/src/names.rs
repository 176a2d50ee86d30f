//! Validated names. Each kind of name has its own type so that a bad name is rejected
//! while parsing, at the line and column where it was written, and so that a service
//! name can never be passed where a package name is expected.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Separates a parse error's message from a hint in the text handed to serde, so the
/// hint survives serde's `custom` error and becomes a `hint:` line again.
pub(crate) const HINT_MARKER: &str = "\n= hint: ";

macro_rules! name_type {
    ($(#[$meta:meta])* $ty:ident, $what:literal, $check:path, $pattern:literal, $rule:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The rule a valid name follows, for messages.
            pub const RULE: &'static str = $rule;
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                if $check(&s) {
                    Ok(Self(s))
                } else {
                    Err(format!(concat!("invalid ", $what, " `{}`", "{}", $rule), s, HINT_MARKER))
                }
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string()).map_err(|e| e.replace(HINT_MARKER, ": "))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern, "description": $rule })
            }
        }
    };
}

name_type!(
    /// A project's name: it names the project's containers, networks and volumes, so it
    /// follows Docker Compose's rule for project names.
    ProjectName,
    "project name",
    is_docker_name,
    "^[a-z0-9][a-z0-9_-]{0,62}$",
    "a project name names Docker containers, networks and volumes: lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 63 characters"
);

name_type!(
    /// A Python package's name as PEP 508 allows it.
    PackageName,
    "package name",
    is_python_name,
    "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
    "a package name is a Python distribution name (PEP 508): letters, digits, `.`, `-` and `_`, starting and ending with a letter or digit"
);

name_type!(
    /// A service's name: it becomes part of container names and environment variables.
    ServiceName,
    "service name",
    is_identifier,
    "^[a-z][a-z0-9_-]{0,62}$",
    "a service name is part of container names: lowercase letters, digits, `-` and `_`, starting with a letter, at most 63 characters"
);

name_type!(
    /// A profile's name.
    ProfileName,
    "profile name",
    is_identifier,
    "^[a-z][a-z0-9_-]{0,62}$",
    "a profile name uses lowercase letters, digits, `-` and `_`, starting with a letter, at most 63 characters"
);

name_type!(
    /// A service kind: the name of the backend plugin that handles the service.
    KindName,
    "service kind",
    is_identifier,
    "^[a-z][a-z0-9_-]{0,62}$",
    "a service kind names a backend plugin: lowercase letters, digits, `-` and `_`, starting with a letter, at most 63 characters"
);

name_type!(
    /// A package task's name (`hsm task PKG NAME`).
    TaskName,
    "task name",
    is_identifier,
    "^[a-z][a-z0-9_-]{0,62}$",
    "a task name uses lowercase letters, digits, `-` and `_`, starting with a letter, at most 63 characters"
);

name_type!(
    /// A third-party plugin's name: the name it gives itself in `describe`.
    PluginName,
    "plugin name",
    is_plugin_name,
    "^[a-z][a-z0-9-]{0,63}$",
    "a plugin name uses lowercase letters, digits and `-`, starting with a letter, at most 64 characters"
);

fn is_plugin_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_docker_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
}

fn is_identifier(s: &str) -> bool {
    is_docker_name(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_python_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_docker_rules() {
        for ok in ["rag-app", "a", "0day", "my_app-2", &"a".repeat(63)] {
            assert!(ProjectName::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["", "RagApp", "-app", "_app", "rag app", "rag.app", &"a".repeat(64), "é"] {
            assert!(ProjectName::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_names_follow_pep_508() {
        for ok in ["auth-service", "Django", "zope.interface", "a", "a_b"] {
            assert!(PackageName::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", "a+b"] {
            assert!(PackageName::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_names_start_with_a_letter() {
        assert!(ServiceName::try_from("vector-db".to_string()).is_ok());
        assert!(ServiceName::try_from("1db".to_string()).is_err());
        assert!(ServiceName::try_from("Db".to_string()).is_err());
    }

    #[test]
    fn errors_carry_the_rule_as_a_hint() {
        let e = ProjectName::try_from("Bad Name".to_string()).unwrap_err();
        let (msg, hint) = e.split_once(HINT_MARKER).unwrap();
        assert_eq!(msg, "invalid project name `Bad Name`");
        assert!(hint.starts_with("a project name names Docker containers"));
    }
}
