//! Data shared by every stage of hsm's pipeline, so that stages agree on what a
//! location, a diagnostic, a secret and a parameter are without depending on each
//! other.
//!
//! - [`cache`]: authenticating, reading and writing the compile cache's entries.
//! - [`capability`]: what a plugin may be granted to do.
//! - [`diag`]: source files, spans and the diagnostics every bad input produces.
//! - [`error`]: how every error that reaches the command line explains itself.
//! - [`text`]: strings whose interpolated parts are secret references, never values.
//! - [`value`]: the parameter trees that registries, projects and plugins exchange.

pub mod cache;
pub mod capability;
pub mod diag;
pub mod error;
pub mod text;
pub mod value;

pub use cache::{Authenticator, tags_equal};
pub use capability::Capability;
pub use diag::{Diagnostic, Diagnostics, FileId, Label, Origin, SourceFile, Sources, Span, names_or_none};
pub use error::Explain;
pub use text::{Encoding, NoRefs, Piece, ResolveRefs, SecretId, SecretStore, Sensitive, Text};
pub use value::Value;
