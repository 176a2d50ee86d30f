//! Data shared by every stage of hsm's pipeline, so that stages agree on what a
//! location, a diagnostic, a secret and a parameter are without depending on each
//! other.
//!
//! - [`cache`]: authenticating, reading and writing what hsm keeps in its cache folder.
//! - [`diag`]: source files, spans and the diagnostics every bad input produces.
//! - [`parallel`]: independent work on every core, with results in their order.
//! - [`text`]: strings whose interpolated parts are secret references, never values.
//! - [`value`]: the parameter trees that registries, projects and plugins exchange.

pub mod cache;
pub mod diag;
pub mod parallel;
pub mod text;
pub mod value;

pub use cache::{Authenticator, tags_equal};
pub use diag::{Diagnostic, Diagnostics, FileId, Label, Origin, SourceFile, Sources, Span};
pub use text::{Encoding, NoRefs, Piece, ResolveRefs, SecretId, SecretStore, Sensitive, Text, stored_form};
pub use value::Value;
