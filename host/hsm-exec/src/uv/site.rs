//! The virtual environment as files: where its interpreter and site-packages are,
//! and what the `.dist-info` folders there say about each installed distribution.
//! Reading these directly (instead of asking uv) is what lets a sync with nothing
//! to do finish without starting a single process.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::names::{normalize, parse_dist_info, requirement_name};

/// The folder of a venv that holds its executables.
pub(crate) fn bin_dir(venv: &Path) -> PathBuf {
    if cfg!(windows) { venv.join("Scripts") } else { venv.join("bin") }
}

/// A venv's interpreter.
pub(crate) fn python(venv: &Path) -> PathBuf {
    if cfg!(windows) { bin_dir(venv).join("python.exe") } else { bin_dir(venv).join("python") }
}

/// What state a venv folder is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// `pyvenv.cfg` and a working interpreter link.
    Ready,
    /// No folder at all.
    Missing,
    /// A venv whose interpreter is gone (the Python it was made from was removed
    /// or upgraded): nothing in it can run, so it is recreated.
    Broken,
    /// A folder that is not a venv: never touched, it may hold the user's files.
    NotAVenv,
}

/// Looks at the venv folder (two `stat`s).
pub(crate) fn health(venv: &Path) -> Health {
    if !venv.join("pyvenv.cfg").is_file() {
        return if venv.symlink_metadata().is_ok() { Health::NotAVenv } else { Health::Missing };
    }
    // `exists` follows the link: a dangling interpreter link counts as gone.
    if python(venv).exists() { Health::Ready } else { Health::Broken }
}

/// The venv's site-packages folder, if it has one.
pub(crate) fn site_packages(venv: &Path) -> io::Result<Option<PathBuf>> {
    if cfg!(windows) {
        let dir = venv.join("Lib").join("site-packages");
        return Ok(dir.is_dir().then_some(dir));
    }
    // `lib/python3.X/site-packages` (or `lib/pypy3.X/…`): one folder per venv in
    // practice, so the listing of `lib` finds it without reading `pyvenv.cfg`.
    let lib = venv.join("lib");
    let entries = match fs::read_dir(&lib) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let dir = entry?.path().join("site-packages");
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found.sort();
    Ok(found.pop())
}

/// One installed distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dist {
    /// Its `.dist-info` folder's name.
    pub(crate) dist_info: String,
    /// Its name, normalized.
    pub(crate) name: String,
    /// Its version.
    pub(crate) version: String,
}

/// The distributions installed in a site-packages folder.
#[derive(Debug)]
pub(crate) struct Site {
    /// The site-packages folder.
    pub(crate) dir: PathBuf,
    /// What is installed there, sorted by `.dist-info` folder.
    pub(crate) dists: Vec<Dist>,
}

impl Site {
    /// Lists the `.dist-info` folders of `dir`.
    pub(crate) fn read(dir: &Path) -> io::Result<Self> {
        let mut dists = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if let Some((name, version)) = parse_dist_info(file_name) {
                dists.push(Dist { dist_info: file_name.to_string(), name, version: version.to_string() });
            }
        }
        dists.sort_by(|a, b| a.dist_info.cmp(&b.dist_info));
        Ok(Self { dir: dir.to_path_buf(), dists })
    }

    /// The installed distribution called `name` (normalized).
    pub(crate) fn find(&self, name: &str) -> Option<&Dist> {
        self.dists.iter().find(|d| d.name == name)
    }

    /// The installed distribution uv installed from the local folder `path`.
    pub(crate) fn find_by_path(&self, path: &Path, editable: bool) -> Option<&Dist> {
        self.dists.iter().find(|d| {
            matches!(direct_url(&self.dir.join(&d.dist_info)), Ok(Some(u)) if u.editable == editable && same_path(&u.path, path))
        })
    }

    /// For each distribution of `names` (normalized), the installed distributions
    /// that require it, leaving out those in `names`. Markers and extras are not
    /// evaluated: a distribution that might need another one keeps it.
    pub(crate) fn requirers(&self, names: &[String]) -> io::Result<BTreeMap<String, Vec<String>>> {
        let mut needed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for dist in self.dists.iter().filter(|d| !names.contains(&d.name)) {
            let metadata = match fs::read_to_string(self.dir.join(&dist.dist_info).join("METADATA")) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for required in requires_dist(&metadata) {
                if names.contains(&required) {
                    let by = needed.entry(required).or_default();
                    if !by.contains(&dist.name) {
                        by.push(dist.name.clone());
                    }
                }
            }
        }
        Ok(needed)
    }
}

/// The normalized names in the `Requires-Dist` headers of a `METADATA` file.
pub(crate) fn requires_dist(metadata: &str) -> Vec<String> {
    metadata
        .lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix("Requires-Dist:"))
        .filter_map(|req| requirement_name(req).ok())
        .map(normalize)
        .collect()
}

/// Where a distribution came from when it was installed from a URL or a folder
/// (PEP 610's `direct_url.json`); distributions from an index have none.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DirectUrl {
    /// The local folder, for `file://` URLs.
    pub(crate) path: Option<PathBuf>,
    /// Whether it is an editable install.
    pub(crate) editable: bool,
}

#[derive(Deserialize)]
struct DirectUrlJson {
    url: String,
    #[serde(default)]
    dir_info: Option<DirInfo>,
}

#[derive(Deserialize)]
struct DirInfo {
    #[serde(default)]
    editable: bool,
}

/// Reads `direct_url.json` in a `.dist-info` folder.
pub(crate) fn direct_url(dist_info: &Path) -> io::Result<Option<DirectUrl>> {
    let text = match fs::read_to_string(dist_info.join("direct_url.json")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let json: DirectUrlJson = serde_json::from_str(&text).map_err(io::Error::other)?;
    Ok(Some(DirectUrl { path: file_url_to_path(&json.url), editable: json.dir_info.is_some_and(|d| d.editable) }))
}

/// Whether uv's `file://` URL names the folder `wanted`: equal as written, or once
/// both are canonical (a path through a symlink).
fn same_path(installed: &Option<PathBuf>, wanted: &Path) -> bool {
    let Some(installed) = installed else { return false };
    if installed == wanted {
        return true;
    }
    match (fs::canonicalize(installed), fs::canonicalize(wanted)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether the installed distribution came from the folder `path`, as an editable
/// link or a copy as asked.
pub(crate) fn installed_from(dist_info: &Path, path: &Path, editable: bool) -> io::Result<bool> {
    Ok(direct_url(dist_info)?.is_some_and(|u| u.editable == editable && same_path(&u.path, path)))
}

/// The local path of a `file://` URL, percent-decoded.
pub(crate) fn file_url_to_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    // `file://localhost/x` names the same file as `file:///x`.
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(byte) = u8::from_str_radix(byte, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    // `file:///C:/x` on Windows.
    let text = if cfg!(windows) { text.trim_start_matches('/').to_string() } else { text };
    Some(PathBuf::from(text))
}

/// The `.pth` files an editable install put in site-packages (per its `RECORD`)
/// that are no longer there: without them, the link to the source is broken.
pub(crate) fn missing_pth(site: &Path, dist_info: &str) -> io::Result<Option<String>> {
    let record = match fs::read_to_string(site.join(dist_info).join("RECORD")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(format!("{dist_info}/RECORD"))),
        Err(e) => return Err(e),
    };
    for line in record.lines() {
        let path = match line.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => line.split(',').next().unwrap_or_default(),
        };
        if path.ends_with(".pth") && !path.contains("..") && !site.join(path).is_file() {
            return Ok(Some(path.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(file_url_to_path("file:///tmp/with%20space/core"), Some(PathBuf::from("/tmp/with space/core")));
        assert_eq!(file_url_to_path("file://localhost/x"), Some(PathBuf::from("/x")));
        assert_eq!(file_url_to_path("file:///a/%E2%9C%93"), Some(PathBuf::from("/a/✓")));
        assert_eq!(file_url_to_path("file:///a/100%"), Some(PathBuf::from("/a/100%")));
        assert_eq!(file_url_to_path("https://example.com/x.whl"), None);
    }

    #[test]
    fn requires_dist_reads_only_the_headers() {
        let metadata = "Metadata-Version: 2.4\nName: api\nRequires-Dist: hsm_fixture.core\nRequires-Dist: Requests[socks]>=2; extra == 'net'\n\nRequires-Dist: not-a-header\n";
        assert_eq!(requires_dist(metadata), ["hsm-fixture-core", "requests"]);
    }

    #[test]
    fn health_tells_a_venv_from_other_folders() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join(".venv");
        assert_eq!(health(&venv), Health::Missing);
        fs::create_dir(&venv).unwrap();
        assert_eq!(health(&venv), Health::NotAVenv);
        fs::write(venv.join("pyvenv.cfg"), "home = /nowhere\n").unwrap();
        assert_eq!(health(&venv), Health::Broken);
        fs::create_dir_all(bin_dir(&venv)).unwrap();
        fs::write(python(&venv), "").unwrap();
        assert_eq!(health(&venv), Health::Ready);
    }

    #[test]
    fn missing_pth_checks_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        fs::create_dir(site.join("a-1.dist-info")).unwrap();
        fs::write(site.join("a-1.dist-info/RECORD"), "_a.pth,sha256=x,10\na-1.dist-info/RECORD,,\n").unwrap();
        assert_eq!(missing_pth(site, "a-1.dist-info").unwrap().as_deref(), Some("_a.pth"));
        fs::write(site.join("_a.pth"), "/src\n").unwrap();
        assert_eq!(missing_pth(site, "a-1.dist-info").unwrap(), None);
    }
}
