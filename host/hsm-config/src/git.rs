//! Git registries: parsing `git+URL@REF#SUBDIR`, and hsm's cache of them, driven
//! through the `git` program. A bare mirror per remote URL lives in
//! `<cache>/git/mirrors/<hash of the URL>`; the files of each commit read are written
//! to `<cache>/git/trees/<commit>`, through a temporary folder renamed into place, so
//! an interrupted checkout is never taken for a complete one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hsm_model::Diagnostic;
use sha2::{Digest, Sha256};

/// The URL schemes a git registry may use (after `git+`).
const SCHEMES: &[&str] = &["https", "http", "ssh", "git", "file"];

/// A git registry as `hsm.yaml` names it: `git+URL[@REF][#SUBDIR]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSpec {
    /// The remote, without `git+` (`https://host/repo.git`).
    pub url: String,
    /// The tag, branch or commit; `None`: the remote's default branch.
    pub reference: Option<String>,
    /// The folder (or file) of the repository that is the registry, `/`-separated.
    pub subdir: Option<String>,
}

impl GitSpec {
    /// Whether `written` names a git registry.
    pub fn is_git(written: &str) -> bool {
        written.starts_with("git+")
    }

    /// Parses `git+URL[@REF][#SUBDIR]`; the error says what is wrong.
    pub fn parse(written: &str) -> Result<Self, String> {
        let rest = written.strip_prefix("git+").ok_or("a git registry starts with `git+`")?;
        let (rest, subdir) = match rest.split_once('#') {
            Some((r, s)) => (r, Some(s)),
            None => (rest, None),
        };
        let (scheme, after) = rest.split_once("://").ok_or("expected `git+SCHEME://…`")?;
        if !SCHEMES.contains(&scheme) {
            return Err(format!("unsupported scheme `{scheme}`: use https, http, ssh, git or file"));
        }
        // The ref is after the last `@` of the path, so `ssh://git@host/r.git` has none.
        let path_start = after.find('/').ok_or("the URL has no path")?;
        let (url_rest, reference) = match after[path_start..].rfind('@') {
            Some(at) => (&after[..path_start + at], Some(&after[path_start + at + 1..])),
            None => (after, None),
        };
        if let Some(r) = reference
            && (r.is_empty() || r.starts_with('-') || r.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!("`{r}` is not a tag, branch or commit"));
        }
        let subdir = match subdir {
            None => None,
            Some(s) => Some(check_subdir(s)?),
        };
        Ok(Self {
            url: format!("{scheme}://{url_rest}"),
            reference: reference.map(str::to_string),
            subdir: subdir.filter(|s| !s.is_empty()),
        })
    }
}

/// A `#subdir`: relative, `/`-separated, no `..`.
fn check_subdir(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if s.starts_with('/') || parts.contains(&"..") || s.contains('\\') {
        return Err(format!("`#{s}` must be a folder inside the repository (relative, without `..`)"));
    }
    Ok(parts.join("/"))
}

/// hsm's cache of git registries, `<cache>/git`.
#[derive(Clone, Debug)]
pub struct GitCache {
    root: PathBuf,
}

impl GitCache {
    /// The cache under hsm's cache folder `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Self { root: cache_dir.join("git") }
    }

    /// The bare mirror of `url` (which may not exist yet).
    pub fn mirror_dir(&self, url: &str) -> PathBuf {
        let digest = hex(&Sha256::digest(url.as_bytes()));
        self.root.join("mirrors").join(&digest[..32])
    }

    /// The files of `commit`, once [`Self::checkout`] wrote them.
    pub fn tree_dir(&self, commit: &str) -> PathBuf {
        self.root.join("trees").join(commit)
    }

    /// Clones the mirror of `url`, or fetches every ref into it (moved tags too).
    pub fn fetch(&self, url: &str) -> Result<PathBuf, Box<Diagnostic>> {
        let mirror = self.mirror_dir(url);
        if mirror.join("HEAD").is_file() {
            git(Some(&mirror), &["fetch", "--quiet", "--prune", "--force", "origin"])
                .map_err(|e| unreachable(url, &e))?;
            return Ok(mirror);
        }
        let parent = mirror.parent().expect("mirrors/<hash>");
        std::fs::create_dir_all(parent).map_err(|e| cache_error(parent, &e))?;
        let tmp = temp_name(&mirror);
        let tmp_str = tmp.to_string_lossy().into_owned();
        let cloned = git(None, &["clone", "--quiet", "--mirror", "--", url, &tmp_str]);
        if let Err(e) = cloned {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(unreachable(url, &e).into());
        }
        if std::fs::rename(&tmp, &mirror).is_err() {
            // Another run cloned it meanwhile: use theirs.
            let _ = std::fs::remove_dir_all(&tmp);
            if !mirror.join("HEAD").is_file() {
                return Err(cache_error(&mirror, &std::io::Error::other("could not move the clone into place")).into());
            }
        }
        Ok(mirror)
    }

    /// The commit `reference` (default: the remote's HEAD) names in `mirror`.
    pub fn resolve(&self, mirror: &Path, url: &str, reference: Option<&str>) -> Result<String, Box<Diagnostic>> {
        let name = reference.unwrap_or("HEAD");
        let rev = format!("{name}^{{commit}}");
        match git(Some(mirror), &["rev-parse", "--verify", "--quiet", "--end-of-options", &rev]) {
            Ok(out) => Ok(String::from_utf8_lossy(&out).trim().to_string()),
            Err(_) => Err(Diagnostic::new(format!("`{url}` has no tag, branch or commit `{name}`"))
                .hint("check the name after `@`; `git ls-remote URL` lists the tags and branches")
                .into()),
        }
    }

    /// Whether `mirror` holds `commit`.
    pub fn has_commit(&self, mirror: &Path, commit: &str) -> bool {
        mirror.join("HEAD").is_file()
            && git(Some(mirror), &["cat-file", "-e", "--end-of-options", &format!("{commit}^{{commit}}")]).is_ok()
    }

    /// The files of `commit` in `<cache>/git/trees/<commit>`, written from `mirror`
    /// unless they are there already (with `fresh`, written again anyway). Only
    /// regular files are written: symbolic links and submodules are left out, so
    /// nothing in the tree points outside it.
    pub fn checkout(&self, mirror: &Path, commit: &str, fresh: bool) -> Result<PathBuf, Box<Diagnostic>> {
        let dir = self.tree_dir(commit);
        if dir.is_dir() && !fresh {
            return Ok(dir);
        }
        let tmp = temp_name(&dir);
        let _ = std::fs::remove_dir_all(&tmp);
        let written = write_tree(mirror, commit, &tmp);
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if dir.is_dir() {
            let old = dir.with_file_name(format!(".old-{commit}-{}", std::process::id()));
            if std::fs::rename(&dir, &old).is_ok() {
                let _ = std::fs::remove_dir_all(&old);
            }
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(cache_error(&dir, &std::io::Error::other("could not move the files into place")).into());
            }
        }
        Ok(dir)
    }
}

/// Writes the regular files of `commit` into `dir`.
fn write_tree(mirror: &Path, commit: &str, dir: &Path) -> Result<(), Box<Diagnostic>> {
    let listing = git(Some(mirror), &["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit])
        .map_err(|e| Diagnostic::new(format!("cannot list commit `{commit}`")).note(e))?;
    let mut blobs = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        let mut meta = meta.split(' ');
        let (mode, kind, oid) = (meta.next(), meta.next(), meta.next());
        if kind == Some("blob") && matches!(mode, Some("100644" | "100755")) {
            let path = check_subdir(path).map_err(Diagnostic::new)?;
            blobs.push((oid.unwrap_or_default().to_string(), path));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, &e))?;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(mirror)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Diagnostic::new(format!("cannot run `git`: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let oids: String = blobs.iter().map(|(oid, _)| format!("{oid}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(oids.as_bytes()));
    let mut output = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut output).map_err(|e| cache_error(dir, &e))?;
    let _ = writer.join();
    let _ = child.wait();
    let mut rest = &output[..];
    for (_, path) in &blobs {
        let header_end = rest.iter().position(|b| *b == b'\n').ok_or_else(|| bad_batch(commit))?;
        let header = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        let size: usize = header.rsplit(' ').next().and_then(|s| s.parse().ok()).ok_or_else(|| bad_batch(commit))?;
        let body = rest.get(header_end + 1..header_end + 1 + size).ok_or_else(|| bad_batch(commit))?;
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cache_error(parent, &e))?;
        }
        std::fs::write(&file, body).map_err(|e| cache_error(&file, &e))?;
        rest = rest.get(header_end + 2 + size..).unwrap_or_default();
    }
    Ok(())
}

fn bad_batch(commit: &str) -> Diagnostic {
    Diagnostic::new(format!("`git cat-file` returned unexpected output for commit `{commit}`"))
}

/// Runs `git` (in `dir`, if given) without prompting; its stdout, or the line of
/// stderr that says why it failed.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    // Never wait for a password: a registry that needs one is unreachable here.
    // Only the transports a registry may name (no `ext::`, which runs commands).
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
        .stdin(Stdio::null());
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let out = cmd.output().map_err(|e| format!("cannot run `git`: {e}"))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // git's own verdict (`fatal: …`) says more than the advice lines after it.
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let said = lines().find(|l| l.starts_with("fatal:") || l.starts_with("error:")).or_else(|| lines().next_back());
    Err(said.unwrap_or("git failed").to_string())
}

fn unreachable(url: &str, git_said: &str) -> Diagnostic {
    Diagnostic::new(format!("cannot fetch `{url}`")).note(format!("git: {git_said}")).hint(
        "check the URL and your access to it (hsm never asks for a password: use an SSH key or a credential helper)",
    )
}

fn cache_error(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(format!("cannot write hsm's cache of git registries at `{}`: {e}", path.display()))
}

/// A temporary sibling of `path`, unique to this process.
fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{name}-{}", std::process::id()))
}

/// The sha256 of a file's bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, reference: Option<&str>, subdir: Option<&str>) -> GitSpec {
        GitSpec { url: url.into(), reference: reference.map(Into::into), subdir: subdir.map(Into::into) }
    }

    #[test]
    fn specs_parse_with_refs_users_and_subdirs() {
        assert_eq!(
            GitSpec::parse("git+https://git.example.com/platform/hsm-registry.git@v3"),
            Ok(spec("https://git.example.com/platform/hsm-registry.git", Some("v3"), None))
        );
        assert_eq!(
            GitSpec::parse("git+ssh://git@host/r.git#registry/"),
            Ok(spec("ssh://git@host/r.git", None, Some("registry")))
        );
        assert_eq!(
            GitSpec::parse("git+file:///srv/r.git@main#a/b"),
            Ok(spec("file:///srv/r.git", Some("main"), Some("a/b")))
        );
        assert!(GitSpec::parse("git+ftp://h/r").is_err());
        assert!(GitSpec::parse("git+https://h/r@").is_err());
        assert!(GitSpec::parse("git+https://h/r@-u").is_err());
        assert!(GitSpec::parse("git+https://h/r#../x").is_err());
        assert!(GitSpec::parse("git+https://h/r#/etc").is_err());
    }
}
