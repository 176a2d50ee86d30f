//! JSON Schemas for `hsm.yaml` and registry files, derived from the same types that
//! parse them, so editors and hsm agree on what a file may say.

use schemars::generate::SchemaSettings;

use crate::file::{ProjectFile, RegistryFile};

/// Which file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// `hsm.yaml`.
    Project,
    /// A registry file.
    Registry,
}

/// The JSON Schema of a format, as pretty-printed JSON with a trailing newline.
pub fn json_schema(which: Which) -> String {
    let generator = SchemaSettings::draft2020_12().for_deserialize().into_generator();
    let schema = match which {
        Which::Project => generator.into_root_schema_for::<ProjectFile>(),
        Which::Registry => generator.into_root_schema_for::<RegistryFile>(),
    };
    let mut out = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_name_their_fields() {
        let project: serde_json::Value = serde_json::from_str(&json_schema(Which::Project)).unwrap();
        let props = project["properties"].as_object().unwrap();
        for field in ["version", "project", "registries", "profile", "env_file", "packages", "services", "plugins"] {
            assert!(props.contains_key(field), "{field}");
        }
        assert_eq!(project["additionalProperties"], serde_json::json!(false));
        let registry: serde_json::Value = serde_json::from_str(&json_schema(Which::Registry)).unwrap();
        let props = registry["properties"].as_object().unwrap();
        assert!(props.contains_key("plugins"));
        assert!(props.contains_key("profiles"));
    }
}
