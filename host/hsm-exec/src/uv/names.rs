//! Python distribution names and requirement strings, read just far enough to know
//! which installed distribution a requirement is about. uv does the real parsing;
//! hsm only needs the name (to find the package in site-packages later) and a
//! guarantee that a requirement can't be mistaken for one of uv's flags.

/// A distribution name normalized per PEP 503: lowercase, runs of `-`, `_` and `.`
/// become one `-`. Two spellings name the same distribution when their normalized
/// forms are equal.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
        } else {
            if separator && !out.is_empty() {
                out.push('-');
            }
            separator = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The distribution name a PEP 508 requirement starts with (`requests` in
/// `requests[socks]>=2; python_version >= "3.9"`, `pkg` in `pkg @ https://…`), or
/// why there is none. Refusing anything that doesn't start with a name also keeps
/// a requirement such as `--index-url=…` from reaching uv as a flag.
pub(crate) fn requirement_name(requirement: &str) -> Result<&str, &'static str> {
    let s = requirement.trim_start();
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() {
        return Err("a requirement starts with a package name");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a package name starts and ends with a letter or a digit");
    }
    match s[end..].chars().next() {
        None => Ok(name),
        Some(c) if c.is_whitespace() || matches!(c, '[' | '(' | '<' | '>' | '=' | '!' | '~' | ';' | '@') => Ok(name),
        Some(_) => {
            Err("the package name is followed by something that is neither a version, extras, a marker nor `@ URL`")
        }
    }
}

/// `text` with the credentials of any URL in it (`https://user:token@host/…`)
/// replaced by `***`, so a requirement can be kept in hsm's state and shown in
/// messages without leaking a token someone wrote into it.
pub(crate) fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end =
            tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The distribution name and version in the name of a `.dist-info` folder
/// (`hsm_fixture_core-0.1.0.dist-info`): the escaped name never holds a `-`, so
/// the first one separates them.
pub(crate) fn parse_dist_info(dir_name: &str) -> Option<(String, &str)> {
    let stem = dir_name.strip_suffix(".dist-info")?;
    let (name, version) = stem.split_once('-')?;
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some((normalize(name), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_follows_pep_503() {
        assert_eq!(normalize("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize("FRIENDLY_BARD"), "friendly-bard");
        assert_eq!(normalize("friendly.bard"), "friendly-bard");
        assert_eq!(normalize("FrIeNdLy-._.-bArD"), "friendly-bard");
        assert_eq!(normalize("hsm_fixture.core"), "hsm-fixture-core");
    }

    #[test]
    fn requirement_name_reads_the_leading_name() {
        for (req, name) in [
            ("requests", "requests"),
            ("requests>=2", "requests"),
            ("requests[socks] >=2.0", "requests"),
            ("Django~=5.0", "Django"),
            ("pkg @ https://example.com/pkg-1.0-py3-none-any.whl", "pkg"),
            ("typing_extensions; python_version < '3.11'", "typing_extensions"),
            ("  zope.interface (>=5)", "zope.interface"),
            ("a!=1", "a"),
        ] {
            assert_eq!(requirement_name(req), Ok(name), "{req}");
        }
    }

    #[test]
    fn requirement_name_refuses_what_is_not_a_requirement() {
        for req in
            ["", "   ", "--index-url=https://evil.example", "-e .", "./core", "/abs/path", "_private", "pkg-", "pkg/x"]
        {
            assert!(requirement_name(req).is_err(), "{req:?} was accepted");
        }
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_credentials("pkg @ https://user:s3cret@host.example/simple/pkg.whl"),
            "pkg @ https://***@host.example/simple/pkg.whl"
        );
        assert_eq!(redact_credentials("pkg @ https://host.example/a@b"), "pkg @ https://host.example/a@b");
        assert_eq!(redact_credentials("requests>=2"), "requests>=2");
        assert_eq!(
            redact_credentials("a @ https://t@x/y ; b @ git+ssh://k:v@z/w"),
            "a @ https://***@x/y ; b @ git+ssh://***@z/w"
        );
    }

    #[test]
    fn dist_info_folders_give_name_and_version() {
        assert_eq!(parse_dist_info("hsm_fixture_core-0.1.0.dist-info"), Some(("hsm-fixture-core".into(), "0.1.0")));
        assert_eq!(parse_dist_info("Django-5.0.1+local.dist-info"), Some(("django".into(), "5.0.1+local")));
        assert_eq!(parse_dist_info("_editable_impl_core.pth"), None);
        assert_eq!(parse_dist_info("nodash.dist-info"), None);
    }
}
