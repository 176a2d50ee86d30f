//! How a plan's texts are written in exported files: every secret becomes a
//! reference to a variable the exported stack reads from its user, never a value,
//! and every variable referenced is listed, so that the user knows what to set.

use std::collections::BTreeMap;

use hsm_model::{Encoding, Piece, SecretId, Text};

/// A variable an exported stack needs from its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// Its name, as the exported files reference it.
    pub name: String,
    /// What its value is.
    pub source: Source,
    /// Whether the value is the source's value percent-encoded (RFC 3986), for a
    /// URL: Compose can't encode when it interpolates, so the encoded form is a
    /// variable of its own (`<NAME>_URLENCODED`).
    pub url_encoded: bool,
}

/// Where a variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A variable of the user's, written in hsm.yaml or a registry.
    User {
        /// The expression as written (`${CORP_DB_PASSWORD}`).
        expression: String,
        /// The secret it is, for whoever writes a values file.
        id: SecretId,
    },
    /// A secret hsm generates for a managed service (a database's password): the
    /// exported stack takes it from the user instead.
    Generated {
        /// The service.
        service: String,
        /// The secret's name within the service.
        name: String,
    },
}

/// How a reference is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// A Compose file's value: Compose interpolates `${VAR}`, `$$` is a `$`.
    Compose,
    /// Inside a POSIX shell's double quotes.
    Shell,
}

/// The variables referenced so far, by name.
#[derive(Debug, Default)]
pub(crate) struct Vars(BTreeMap<String, Variable>);

impl Vars {
    /// The variables, by name.
    pub(crate) fn into_list(self) -> Vec<Variable> {
        self.0.into_values().collect()
    }

    /// The variables so far, by name.
    pub(crate) fn list(&self) -> impl Iterator<Item = &Variable> {
        self.0.values()
    }

    /// `text` of service `service` in `syntax`. A host port is the container's own
    /// port: exported stacks reach services inside their network.
    pub(crate) fn render(&mut self, text: &Text, service: &str, syntax: Syntax) -> Result<String, String> {
        let mut out = String::new();
        for piece in text.pieces() {
            match piece {
                Piece::Lit(s) => out.push_str(&escape(s, syntax)),
                Piece::HostPort { port, .. } => out.push_str(&port.to_string()),
                Piece::Secret { id, label, encoding } => {
                    let name =
                        variable_of(label).ok_or_else(|| format!("can't tell which variable `{label}` reads"))?;
                    let source = Source::User { expression: label.clone(), id: *id };
                    let plain = label == &format!("${{{name}}}") || label == &format!("${name}");
                    // Compose can't encode: the encoded form is a variable of its own.
                    let derived = *encoding == Encoding::Url && syntax == Syntax::Compose;
                    let written = if plain || derived { None } else { Some(label.as_str()) };
                    out.push_str(&self.reference(&name, source, *encoding, written, syntax)?);
                }
                Piece::Generated { name, encoding } => {
                    let var = generated_name(service, name);
                    let source = Source::Generated { service: service.to_string(), name: name.clone() };
                    out.push_str(&self.reference(&var, source, *encoding, None, syntax)?);
                }
            }
        }
        Ok(out)
    }

    /// Records the variable and writes its reference: a required one
    /// (`${NAME:?…}`) unless the user wrote an expression with a default or a
    /// message of its own (`written`), which is kept.
    fn reference(
        &mut self,
        name: &str,
        source: Source,
        encoding: Encoding,
        written: Option<&str>,
        syntax: Syntax,
    ) -> Result<String, String> {
        let url_encoded = encoding == Encoding::Url;
        let var =
            if url_encoded && syntax == Syntax::Compose { format!("{name}_URLENCODED") } else { name.to_string() };
        let variable = Variable { name: var.clone(), source, url_encoded: url_encoded && syntax == Syntax::Compose };
        if let Some(known) = self.0.get(&var)
            && known != &variable
            && !same_user_variable(known, &variable)
        {
            return Err(format!("two different secrets would both be the variable `{var}`"));
        }
        self.0.entry(var.clone()).or_insert(variable);
        let reference = match (written, syntax) {
            (None, _) => format!("${{{var}:?{var} is not set}}"),
            (Some(label), Syntax::Compose) => label.to_string(),
            (Some(label), Syntax::Shell) => shell_expression(label)?,
        };
        Ok(match (syntax, url_encoded) {
            (Syntax::Shell, true) => format!("$(urlencode \"{reference}\")"),
            _ => reference,
        })
    }
}

/// Two references to one variable of the user's, written differently
/// (`${A}` and `${A:-x}`), are one variable.
fn same_user_variable(a: &Variable, b: &Variable) -> bool {
    matches!((&a.source, &b.source), (Source::User { .. }, Source::User { .. })) && a.url_encoded == b.url_encoded
}

/// Literal text in `syntax`.
pub(crate) fn escape(s: &str, syntax: Syntax) -> String {
    match syntax {
        Syntax::Compose => s.replace('$', "$$"),
        Syntax::Shell => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if matches!(c, '\\' | '"' | '$' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// The user's expression as POSIX sh reads it the way hsm and Compose do: the
/// name, its operator and its word, the word escaped for double quotes (`$$` is
/// hsm's `$`). A word holding another expression is refused: sh would run
/// what hsm and Compose keep literal.
fn shell_expression(label: &str) -> Result<String, String> {
    let Some(inner) = label.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        let name = variable_of(label).ok_or_else(|| format!("can't tell which variable `{label}` reads"))?;
        return Ok(format!("${{{name}}}"));
    };
    let name: String = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let rest = &inner[name.len()..];
    if rest.is_empty() {
        return Ok(format!("${{{name}}}"));
    }
    let op = [":-", ":?", ":+", "-", "?", "+"]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .ok_or_else(|| format!("`{label}` is no expression a shell script can hold"))?;
    let word = rest[op.len()..].replace("$$", "\u{0}");
    if word.contains('$') {
        return Err(format!("`{label}` holds another expression, which a shell script would run"));
    }
    let mut escaped = String::new();
    for c in word.replace('\u{0}', "$").chars() {
        if matches!(c, '\\' | '"' | '$' | '`' | '}') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Ok(format!("${{{name}{op}{escaped}}}"))
}

/// The variable an expression as written reads: `X` of `$X`, `${X}`, `${X:-d}`.
pub(crate) fn variable_of(expression: &str) -> Option<String> {
    let rest = expression.strip_prefix('$')?;
    let rest = rest.strip_prefix('{').unwrap_or(rest);
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

/// The variable that stands for a generated secret: `HSM_<SERVICE>_<NAME>`.
pub(crate) fn generated_name(service: &str, name: &str) -> String {
    let upper = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect::<String>()
    };
    format!("HSM_{}_{}", upper(service), upper(name))
}

/// `s` as one word of a POSIX shell command.
pub(crate) fn shell_word(s: &str) -> String {
    // Not `=`: a first word `A=b` would be an assignment.
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: u32, label: &str, encoding: Encoding) -> Piece {
        Piece::Secret { id: SecretId(id), label: label.into(), encoding }
    }

    #[test]
    fn secrets_become_required_references_and_are_listed() {
        let mut vars = Vars::default();
        let text = Text::from_pieces([
            Piece::Lit("postgresql://app:".into()),
            secret(0, "${CORP_DB_PASSWORD}", Encoding::Url),
            Piece::Lit("@db:".into()),
            Piece::HostPort { container: "server".into(), port: 5432 },
            Piece::Lit("/a?x=$1".into()),
        ]);
        assert_eq!(
            vars.render(&text, "postgres", Syntax::Compose).unwrap(),
            "postgresql://app:${CORP_DB_PASSWORD_URLENCODED:?CORP_DB_PASSWORD_URLENCODED is not set}@db:5432/a?x=$$1"
        );
        assert_eq!(
            vars.render(&text, "postgres", Syntax::Shell).unwrap(),
            "postgresql://app:$(urlencode \"${CORP_DB_PASSWORD:?CORP_DB_PASSWORD is not set}\")@db:5432/a?x=\\$1"
        );
        let generated = Text::from_pieces([Piece::Generated { name: "api-key".into(), encoding: Encoding::Raw }]);
        assert_eq!(
            vars.render(&generated, "vector-db", Syntax::Compose).unwrap(),
            "${HSM_VECTOR_DB_API_KEY:?HSM_VECTOR_DB_API_KEY is not set}"
        );
        let names: Vec<String> = vars.into_list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["CORP_DB_PASSWORD", "CORP_DB_PASSWORD_URLENCODED", "HSM_VECTOR_DB_API_KEY"]);
    }

    #[test]
    fn an_expression_with_a_default_is_kept_as_written() {
        let mut vars = Vars::default();
        let text = Text::from_pieces([secret(1, "${PORT:-5432}", Encoding::Raw)]);
        assert_eq!(vars.render(&text, "s", Syntax::Compose).unwrap(), "${PORT:-5432}");
        assert_eq!(variable_of("$HOST").as_deref(), Some("HOST"));
        assert_eq!(variable_of("${A_1:?set it}").as_deref(), Some("A_1"));
        assert_eq!(variable_of("${1}"), None);
    }

    #[test]
    fn generated_secrets_that_would_share_a_name_are_refused() {
        let mut vars = Vars::default();
        let a = Text::from_pieces([Piece::Generated { name: "pass".into(), encoding: Encoding::Raw }]);
        vars.render(&a, "db-x", Syntax::Compose).unwrap();
        let err = vars.render(&a, "db_x", Syntax::Compose).unwrap_err();
        assert!(err.contains("HSM_DB_X_PASS"), "{err}");
    }

    /// What sh makes of the expressions equals what hsm makes of them.
    #[test]
    fn expressions_in_a_shell_script_mean_what_they_mean_to_hsm() {
        let sh = |expr: &str, env: &[(&str, &str)]| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s \"{}\"", shell_expression(expr).unwrap()))
                .env_clear()
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (out.status.success(), String::from_utf8(out.stdout).unwrap())
        };
        assert_eq!(sh("${PW:-pa$$word}", &[]), (true, "pa$word".to_string()));
        assert_eq!(sh("${PW:-a \"b\" `c` {d}}", &[]).1, "a \"b\" `c` {d}");
        assert_eq!(sh("${PW:-x}", &[("PW", "set")]).1, "set");
        assert!(!sh("${PW:?run `id` first}", &[]).0);
        assert_eq!(sh("$PW", &[("PW", "v")]).1, "v");
        assert!(shell_expression("${A:-$(id)}").is_err());
        assert!(shell_expression("${A:-${B}}").is_err());
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("pg_isready"), "pg_isready");
        assert_eq!(shell_word("it's a"), r"'it'\''s a'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("A=b"), "'A=b'");
    }
}
