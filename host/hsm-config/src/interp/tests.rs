//! Tests of interpolation: every `${…}` form, escapes, nesting and its limits, errors' spans.

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

fn sub(s: &str, e: &HashMap<String, String>) -> Result<String, String> {
    let t = Template::parse(s).map_err(|e| format!("syntax: {}", e.message))?;
    t.resolve_string(e).map_err(|e| match e {
        ResolveError::Unset { name, .. } => format!("unset: {name}"),
        ResolveError::Required { name, message, empty, .. } => {
            format!("required: {name} ({message}) empty={empty}")
        }
        ResolveError::Lookup(never) => match never {},
    })
}

// The cases below follow Compose's documentation of interpolation: each modifier,
// with the variable set, set but empty, and unset.
#[test]
fn direct_substitution() {
    let e = env(&[("VAR", "value"), ("EMPTY", "")]);
    assert_eq!(sub("${VAR}", &e).unwrap(), "value");
    assert_eq!(sub("$VAR", &e).unwrap(), "value");
    assert_eq!(sub("pre-${VAR}-post", &e).unwrap(), "pre-value-post");
    assert_eq!(sub("$VAR.suffix", &e).unwrap(), "value.suffix");
    assert_eq!(sub("${EMPTY}", &e).unwrap(), "");
    // Stricter than Compose: unset without a default is an error.
    assert_eq!(sub("${UNSET}", &e).unwrap_err(), "unset: UNSET");
    assert_eq!(sub("$UNSET", &e).unwrap_err(), "unset: UNSET");
}

#[test]
fn default_values() {
    let e = env(&[("VAR", "value"), ("EMPTY", "")]);
    assert_eq!(sub("${VAR:-default}", &e).unwrap(), "value");
    assert_eq!(sub("${EMPTY:-default}", &e).unwrap(), "default");
    assert_eq!(sub("${UNSET:-default}", &e).unwrap(), "default");
    assert_eq!(sub("${VAR-default}", &e).unwrap(), "value");
    assert_eq!(sub("${EMPTY-default}", &e).unwrap(), "");
    assert_eq!(sub("${UNSET-default}", &e).unwrap(), "default");
    assert_eq!(sub("${UNSET:-}", &e).unwrap(), "");
    assert_eq!(sub("${UNSET:-a b: c}", &e).unwrap(), "a b: c");
}

#[test]
fn required_values() {
    let e = env(&[("VAR", "value"), ("EMPTY", "")]);
    assert_eq!(sub("${VAR:?must be set}", &e).unwrap(), "value");
    assert_eq!(sub("${VAR?must be set}", &e).unwrap(), "value");
    assert_eq!(sub("${EMPTY?must be set}", &e).unwrap(), "");
    assert_eq!(sub("${EMPTY:?must be set}", &e).unwrap_err(), "required: EMPTY (must be set) empty=true");
    assert_eq!(sub("${UNSET:?must be set}", &e).unwrap_err(), "required: UNSET (must be set) empty=false");
    assert_eq!(sub("${UNSET?must be set}", &e).unwrap_err(), "required: UNSET (must be set) empty=false");
    assert_eq!(sub("${UNSET?}", &e).unwrap_err(), "required: UNSET () empty=false");
}

#[test]
fn alternative_values() {
    let e = env(&[("VAR", "value"), ("EMPTY", "")]);
    assert_eq!(sub("${VAR:+replacement}", &e).unwrap(), "replacement");
    assert_eq!(sub("${EMPTY:+replacement}", &e).unwrap(), "");
    assert_eq!(sub("${UNSET:+replacement}", &e).unwrap(), "");
    assert_eq!(sub("${VAR+replacement}", &e).unwrap(), "replacement");
    assert_eq!(sub("${EMPTY+replacement}", &e).unwrap(), "replacement");
    assert_eq!(sub("${UNSET+replacement}", &e).unwrap(), "");
}

#[test]
fn nesting() {
    let e = env(&[("B", "b"), ("C", "c")]);
    assert_eq!(sub("${A:-${B:-x}}", &e).unwrap(), "b");
    assert_eq!(sub("${A:-${Z:-x}}", &e).unwrap(), "x");
    assert_eq!(sub("${A:-pre-${B}-${C}}", &e).unwrap(), "pre-b-c");
    assert_eq!(sub("${B:+${C}!}", &e).unwrap(), "c!");
    assert_eq!(sub("${A:-${Z:-${C}}}", &e).unwrap(), "c");
    // A default is only resolved when it is needed.
    assert_eq!(sub("${B:-${UNSET}}", &e).unwrap(), "b");
    assert_eq!(sub("${A:-${UNSET}}", &e).unwrap_err(), "unset: UNSET");
    assert_eq!(sub("${A:?need ${C}}", &e).unwrap_err(), "required: A (need c) empty=false");
}

#[test]
fn escapes() {
    let e = env(&[("VAR", "value")]);
    assert_eq!(sub("$$", &e).unwrap(), "$");
    assert_eq!(sub("$${VAR}", &e).unwrap(), "${VAR}");
    assert_eq!(sub("$$VAR", &e).unwrap(), "$VAR");
    assert_eq!(sub("$$$VAR", &e).unwrap(), "$value");
    assert_eq!(sub("a$$b$$", &e).unwrap(), "a$b$");
    assert_eq!(sub("${UNSET:-$$}", &e).unwrap(), "$");
    assert_eq!(sub("no refs: {} } {", &e).unwrap(), "no refs: {} } {");
    // A `$` that starts nothing is text, as in Compose.
    assert_eq!(sub("a $ string", &e).unwrap(), "a $ string");
    assert_eq!(sub("^[a-z]+$", &e).unwrap(), "^[a-z]+$");
    assert_eq!(sub("cost: 5$", &e).unwrap(), "cost: 5$");
    assert_eq!(sub("$1 and $-", &e).unwrap(), "$1 and $-");
    assert_eq!(sub("${UNSET:-a $ b}", &e).unwrap(), "a $ b");
}

#[test]
fn braces_inside_a_default_are_counted() {
    let json = env(&[("JSON", "{\"json\":2}"), ("J", "v")]);
    assert_eq!(sub("ok ${JSON:-{\"json\":1}}", &json).unwrap(), "ok {\"json\":2}");
    assert_eq!(sub("ok ${NOPE:-{\"json\":1}}", &json).unwrap(), "ok {\"json\":1}");
    assert_eq!(sub("${J:-{a{b}c}}", &json).unwrap(), "v");
    assert_eq!(sub("${NOPE:-{a{b}c}}", &json).unwrap(), "{a{b}c}");
    assert_eq!(sub("${NOPE:-{a}}b", &json).unwrap(), "{a}b");
    assert_eq!(sub("${J:+{x}}-${NOPE:-${J}{}}", &json).unwrap(), "{x}-v{}");
    assert_eq!(sub("${NOPE:?need {braces}}", &json).unwrap_err(), "required: NOPE (need {braces}) empty=false");
    // An unbalanced `{` leaves the expression open.
    assert!(sub("${NOPE:-{a}", &json).unwrap_err().starts_with("syntax: unclosed"));
}

#[test]
fn syntax_errors_are_located() {
    let err = |s: &str| Template::parse(s).unwrap_err();
    let e = err("a ${VAR");
    assert_eq!((e.start, e.len, e.message.as_str()), (2, 5, "unclosed `${`: no matching `}`"));
    let e = err("x ${}");
    assert_eq!((e.start, e.len, e.message.as_str()), (2, 3, "empty variable name in `${}`"));
    let e = err("${1A}");
    assert_eq!(
        e.message,
        "`1A` can't be referenced: a name in `${…}` is ASCII letters, digits and `_`, not starting with a digit"
    );
    let e = err("x ${a.b} y");
    assert_eq!((e.start, e.len), (2, 6));
    assert!(e.hint.contains("name the variable `A_B` instead"), "{}", e.hint);
    assert!(err("${a[1]}").message.starts_with("`a[1]` can't be referenced"));
    assert!(err("${a.b:-x}").message.starts_with("`a.b` can't be referenced"));
    assert_eq!(err("${-x}").message, "expected a variable name after `${`");
    assert_eq!(err("${ A}").message, "expected a variable name after `${`");
    let e = err("${VAR/a/b}");
    assert_eq!((e.start, e.len, e.message.as_str()), (0, 10, "unsupported interpolation `${VAR/a/b}`"));
    let e = err("${VAR:=x}");
    assert_eq!(e.message, "unsupported interpolation `${VAR:=x}`");
    let e = err("${A:-${B}");
    assert_eq!(e.start, 0);
}

/// Found writing the fuzz targets: each level of nesting was a level of recursion, so a
/// file of deeply nested defaults overflowed the stack.
#[test]
fn nesting_is_bounded() {
    let nested = |levels: usize| format!("{}x{}", "${A:-".repeat(levels), "}".repeat(levels));
    assert_eq!(sub(&nested(MAX_NESTING), &env(&[])).unwrap(), "x");
    let e = Template::parse(&nested(MAX_NESTING + 1)).unwrap_err();
    assert_eq!((e.start, e.len), (5 * MAX_NESTING, 2));
    assert_eq!(e.message, "`${…}` nested more than 64 deep");
    assert!(Template::parse(&nested(100_000)).is_err());
}

#[test]
fn labels_are_the_expressions_as_written() {
    let t = Template::parse("postgres://app:${PASS}@$HOST:${PORT:-5432}/db").unwrap();
    let e = env(&[("PASS", "s3cr3t"), ("HOST", "h")]);
    let parts = t.resolve(&e).unwrap();
    assert_eq!(
        parts,
        vec![
            Resolved::Lit("postgres://app:".into()),
            Resolved::Expr { label: "${PASS}".into(), value: "s3cr3t".into() },
            Resolved::Lit("@".into()),
            Resolved::Expr { label: "$HOST".into(), value: "h".into() },
            Resolved::Lit(":".into()),
            Resolved::Expr { label: "${PORT:-5432}".into(), value: "5432".into() },
            Resolved::Lit("/db".into()),
        ]
    );
    assert_eq!(t.variables(), vec!["PASS", "HOST", "PORT"]);
}

#[test]
fn unset_errors_point_at_the_expression() {
    let t = Template::parse("x ${A:-${B}}").unwrap();
    match t.resolve(&env(&[])).unwrap_err() {
        ResolveError::Unset { name, start, len } => assert_eq!((name.as_str(), start, len), ("B", 7, 4)),
        other => panic!("{other:?}"),
    }
}
