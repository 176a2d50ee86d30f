//! What a plugin may put into a consumer's environment, which `hsm run`, `hsm env`
//! (whose output users `eval`) and anything else that runs a package's programs
//! hand to processes on the user's machine. A plugin sets only the variables it
//! declares (or, built for a WIT version that can't declare them, that `hsm.yaml`
//! grants by name); on top of that, whatever is declared or granted, no plugin may
//! set a variable of the families below, which steer how programs start and where
//! they connect, nor give a value that a line break, a terminal control or a path
//! into `.hsm/` could turn into more than a value.

use hsm_model::{Piece, Text};

/// A family of variables no plugin may set, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// What the variables do, completing "it …" (`makes programs load or run code`).
    pub reason: &'static str,
    /// Names, exactly (compared ignoring case, as some programs read lowercase).
    exact: &'static [&'static str],
    /// Name beginnings.
    prefixes: &'static [&'static str],
    /// Name endings.
    suffixes: &'static [&'static str],
    /// Name endings that count only when glued to the word before (`CLASSPATH`,
    /// `PGPASSFILE`, but not `API_BASE_PATH`).
    glued: &'static [&'static str],
    /// Endings that the ending rules don't apply to (`PROFILE` is not a `FILE`).
    except: &'static [&'static str],
    /// Parts anywhere in the name.
    parts: &'static [&'static str],
}

impl Family {
    /// Whether `upper` (a name in upper case) belongs to the family.
    fn has(&self, upper: &str) -> bool {
        let ends = || {
            !self.except.iter().any(|e| upper.ends_with(e))
                && (self.suffixes.iter().any(|s| upper.ends_with(s))
                    || self.glued.iter().any(|g| upper.strip_suffix(g).is_some_and(|before| !before.ends_with('_'))))
        };
        self.exact.contains(&upper)
            || self.prefixes.iter().any(|p| upper.starts_with(p))
            || ends()
            || self.parts.iter().any(|p| upper.contains(p))
    }
}

/// The families, in the order they are checked. They are broad on purpose: a
/// service's connection settings (`DATABASE_URL`, `REDIS_HOST`, `QDRANT_API_KEY`)
/// fall in none of them, and a plugin that needs a name they catch can choose
/// another (consumers rename variables with `env_names` anyway).
pub const FAMILIES: &[Family] = &[
    Family {
        reason: "makes programs load or run code (a loader, a shell's or an interpreter's startup, a search path, compiler flags)",
        exact: &[
            "ENV",
            "BASH_ENV",
            "PROMPT_COMMAND",
            "PS0",
            "PS1",
            "PS2",
            "PS3",
            "PS4",
            "PROMPT",
            "RPROMPT",
            "IFS",
            "SHELLOPTS",
            "BASHOPTS",
            "PERL5OPT",
            "RUBYOPT",
            "MFLAGS",
            "MAKEFILES",
            "CC",
            "CXX",
            "CPP",
            "LD",
            "AR",
            "AS",
            "FC",
            "GCONV_PATH",
            "GOENV",
            "GLIBC_TUNABLES",
            "NODE_OPTIONS",
            "NODE_PATH",
            "NODE_REPL_EXTERNAL_MODULE",
            "NODE_ICU_DATA",
            "NODE_V8_COVERAGE",
            "FISH_USER_PATHS",
            "TERMCAP",
            "LESSKEY",
        ],
        prefixes: &[
            "LD_",
            "DYLD_",
            "PYTHON",
            "BASH_FUNC_",
            "PERL",
            "RUBY",
            "JAVA",
            "_JAVA",
            "JDK_",
            "DOTNET_",
            "COMPLUS_",
            "CORECLR_",
            "LUA_",
            "JULIA_",
            "GUILE_",
            "ERL_",
            "ELIXIR_",
            "GTK_",
            "QT_",
            "GST_",
            "GIO_",
            "GI_",
            "R_PROFILE",
            "R_LIBS",
            "RUSTC",
            "IPYTHON",
            "JUPYTER",
            "CGO_",
        ],
        suffixes: &[
            "FLAGS",
            "_OPTS",
            "PRELOAD",
            "LIBRARY_PATH",
            "INCLUDE_PATH",
            "PLUGIN_PATH",
            "LOAD_PATH",
            "MODULE_PATH",
            "TYPELIB_PATH",
            "SEARCH_PATH",
            "EXEC_PATH",
        ],
        glued: &["PATH", "PATHS"],
        except: &[],
        parts: &[],
    },
    Family {
        reason: "names a program that other programs run (an editor, a pager, a shell, a browser, an SSH or password helper)",
        exact: &["SHELL", "VISUAL", "TERMINAL", "LESSOPEN", "LESSCLOSE", "DISPLAY", "FCEDIT", "HGMERGE"],
        prefixes: &["GIT_", "SSH_", "SUDO_", "GPG_"],
        suffixes: &["EDITOR", "PAGER", "BROWSER", "_COMMAND", "_CMD", "_PROGRAM", "_PROG", "_HELPER", "_SHELL", "_RSH"],
        glued: &[],
        except: &[],
        parts: &["ASKPASS"],
    },
    Family {
        reason: "points programs at configuration, data or folders they trust (a home, a config file or folder)",
        exact: &[
            "HOME",
            "ZDOTDIR",
            "INPUTRC",
            "KUBECONFIG",
            "OPENSSL_CONF",
            "OPENSSL_ENGINES",
            "OPENSSL_MODULES",
            "TMP",
            "TEMP",
            "LOCPATH",
            "NLSPATH",
            "HOSTALIASES",
            "RESOLV_HOST_CONF",
            "LOCALDOMAIN",
            "RES_OPTIONS",
            "VIMINIT",
            "EXINIT",
            "TERMINFO",
            "TERMINFO_DIRS",
            "VIRTUAL_ENV",
            "CONDA_PREFIX",
        ],
        prefixes: &["XDG_", "HSM_", "DOCKER_", "COMPOSE_", "BUILDKIT_", "KUBE", "CONTAINERS_", "PODMAN_", "KRB5"],
        suffixes: &["_CONFIG", "CONF", "RC", "DIR", "_DIRS", "HOME", "_FILE", "_FILES"],
        glued: &["FILE"],
        except: &["PROFILE"],
        parts: &["CONFIG_"],
    },
    Family {
        reason: "tells programs where to find or fetch credentials",
        exact: &["NETRC", "GNUPGHOME", "PGPASSFILE", "PGSERVICEFILE", "PGSYSCONFDIR"],
        prefixes: &["AWS_CONTAINER_", "AWS_SHARED_", "AWS_PROFILE", "AWS_ROLE_", "AWS_WEB_IDENTITY"],
        suffixes: &[],
        glued: &[],
        except: &[],
        parts: &["CREDENTIAL", "KEYRING", "KEYCHAIN", "TOKEN_FILE", "AUTH_SOCK"],
    },
    Family {
        reason: "changes which certificates programs trust or whether they check them",
        exact: &["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLCRLDIR", "NODE_EXTRA_CA_CERTS"],
        prefixes: &["SSL_", "SSLKEYLOG"],
        suffixes: &[],
        glued: &[],
        except: &[],
        parts: &[
            "CA_BUNDLE",
            "CA_CERT",
            "CACERT",
            "CAFILE",
            "CAPATH",
            "CERT_FILE",
            "CERT_DIR",
            "SSL_CERT",
            "TLS_CA",
            "NO_VERIFY",
            "REJECT_UNAUTHORIZED",
            "SSL_VERIFY",
            "VERIFY_SSL",
            "TLS_VERIFY",
            "INSECURE",
            "TRUST",
        ],
    },
    Family {
        reason: "sends programs' connections through a proxy",
        exact: &["SOCKS_SERVER", "SOCKS5_SERVER", "SOCKS_VERSION"],
        prefixes: &[],
        suffixes: &["PROXY"],
        glued: &[],
        except: &[],
        parts: &[],
    },
    Family {
        reason: "chooses where package managers and model hubs download from (an index, a registry, a mirror)",
        exact: &[
            "GOPROXY",
            "GONOSUMDB",
            "GONOSUMCHECK",
            "GOPRIVATE",
            "GOINSECURE",
            "GOSUMDB",
            "GOTOOLCHAIN",
            "GOROOT",
            "PUB_HOSTED_URL",
        ],
        prefixes: &[
            "PIP_",
            "UV_",
            "PIPX_",
            "POETRY_",
            "PDM_",
            "HATCH_",
            "CONDA",
            "MAMBA_",
            "NPM_",
            "YARN_",
            "PNPM_",
            "CARGO_",
            "RUSTUP_",
            "BUNDLE_",
            "GEM_",
            "MAVEN_",
            "GRADLE_",
            "NUGET_",
            "COMPOSER_",
            "TWINE_",
            "HOMEBREW_",
            "HF_",
            "HUGGINGFACE_",
        ],
        suffixes: &[],
        glued: &[],
        except: &[],
        parts: &["INDEX_URL", "EXTRA_INDEX", "FIND_LINKS", "TRUSTED_HOST", "MIRROR"],
    },
];

/// The family a variable name belongs to, if any.
pub fn family_of(name: &str) -> Option<&'static Family> {
    // Names are nearly always upper case already: no copy then.
    let upper = match name.bytes().any(|b| b.is_ascii_lowercase()) {
        true => std::borrow::Cow::Owned(name.to_ascii_uppercase()),
        false => std::borrow::Cow::Borrowed(name),
    };
    FAMILIES.iter().find(|f| f.has(&upper))
}

/// Why no plugin may set `name`, if none may.
pub fn refused_name(name: &str) -> Option<String> {
    if name == "PATH" {
        // The first family's `PATH` ending says it, but this one deserves its own words.
        return Some("`PATH` chooses which programs run, so no plugin may set it".into());
    }
    family_of(name).map(|f| format!("`{name}` {}, so no plugin may set it (whatever it declares)", f.reason))
}

/// Whether `name` is a variable name hsm accepts from a plugin: an ASCII letter or
/// `_`, then letters, digits and `_`, at most 128 bytes.
pub fn is_env_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first control or invisible character in a text's literal parts (a line
/// break, NUL, ESC, a zero-width or bidirectional character, ...), which would end
/// the value early in an env file, smuggle another variable in, act on the user's
/// terminal, or hide part of a path (see [`hsm_model::text::is_hidden`]).
pub fn hidden_in(value: &Text) -> Option<char> {
    value.pieces().iter().find_map(|p| match p {
        Piece::Lit(s) => s.chars().find(|&c| hsm_model::text::is_hidden(c)),
        _ => None,
    })
}

/// Whether a value names a path inside a `.hsm` folder: the files plugins write
/// live in `.hsm/<plugin>/`, and a variable that points a program there (a
/// configuration home, a file of settings, an `@file` of arguments) lets the
/// plugin's file decide what the program does. The value's literal parts are
/// percent-decoded and compared ignoring case; a `.hsm` whose neighbours could not
/// continue a file name (anything but letters, digits, `_`, `-` and, before it,
/// `.`) is enough: `./.hsm/x`, `@.hsm/x`, `file:.hsm`, `C:\app\.HSM\x`, but not
/// `db.hsm.example.com` or `my.hsm`.
pub fn points_into_hsm(value: &Text) -> bool {
    let mut joined = String::new();
    for piece in value.pieces() {
        match piece {
            Piece::Lit(s) => joined.push_str(s),
            // A reference ends a path part as a separator would.
            _ => joined.push('/'),
        }
    }
    let decoded = percent_decode(&joined).to_ascii_lowercase();
    let b = decoded.as_bytes();
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    decoded.match_indices(".hsm").any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + 4).copied();
        !before.is_some_and(|c| name_char(c) || c == b'.') && !after.is_some_and(name_char)
    })
}

/// `%XX` sequences decoded, repeatedly (so `%252e` is `.` too); anything else as
/// it is.
fn percent_decode(s: &str) -> String {
    let mut current = s.to_string();
    // Only a text with a `%` left can change.
    for _ in 0..4 {
        if !current.contains('%') {
            break;
        }
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if bytes[i] == b'%'
                && let (Some(h), Some(l)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case (at least) per family, from the variables a hostile plugin was
    /// seen to use or that programs are documented to obey.
    #[test]
    fn every_family_refuses_its_variables() {
        let cases: &[(usize, &[&str])] = &[
            (
                0,
                &[
                    "LD_PRELOAD",
                    "LD_LIBRARY_PATH",
                    "DYLD_INSERT_LIBRARIES",
                    "PYTHONSTARTUP",
                    "PYTHONPATH",
                    "NODE_OPTIONS",
                    "PERL5OPT",
                    "BASH_ENV",
                    "ENV",
                    "BASH_FUNC_ls%%",
                    "JAVA_TOOL_OPTIONS",
                    "CLASSPATH",
                    "RUBYOPT",
                    "IPYTHONDIR",
                    "MANPATH",
                    "PATH",
                    "GOPATH",
                    "PS1",
                    "PROMPT",
                    "CFLAGS",
                    "LDFLAGS",
                    "CGO_CFLAGS",
                    "MAKEFILES",
                    "GOENV",
                    "GLIBC_TUNABLES",
                    "FISH_USER_PATHS",
                    "TERMCAP",
                    "LESSKEY",
                    "KAFKA_OPTS",
                ],
            ),
            (
                1,
                &[
                    "EDITOR",
                    "VISUAL",
                    "PAGER",
                    "GIT_SSH_COMMAND",
                    "GIT_PAGER",
                    "SSH_ASKPASS",
                    "SHELL",
                    "BROWSER",
                    "HGEDITOR",
                    "FCEDIT",
                    "RSYNC_RSH",
                    "GH_BROWSER",
                ],
            ),
            (
                2,
                &[
                    "XDG_CONFIG_HOME",
                    "HOME",
                    "ZDOTDIR",
                    "GIT_CONFIG_GLOBAL",
                    "KUBECONFIG",
                    "OPENSSL_CONF",
                    "AWS_CONFIG_FILE",
                    "DOCKER_HOST",
                    "TMPDIR",
                    "CURL_HOME",
                    "WGETRC",
                    "HSM_CACHE_DIR",
                    "PKG_CONFIG_PATH",
                ],
            ),
            (3, &["AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "NETRC", "PGPASSFILE"]),
            (
                4,
                &[
                    "SSL_CERT_FILE",
                    "SSL_CERT_DIR",
                    "REQUESTS_CA_BUNDLE",
                    "CURL_CA_BUNDLE",
                    "NODE_EXTRA_CA_CERTS",
                    "GIT_SSL_NO_VERIFY",
                    "PGSSLROOTCERT",
                    "SSLKEYLOGFILE",
                ],
            ),
            (5, &["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "NO_PROXY", "SOCKS_SERVER"]),
            (
                6,
                &[
                    "PIP_INDEX_URL",
                    "UV_INDEX_URL",
                    "PIP_EXTRA_INDEX_URL",
                    "NPM_CONFIG_REGISTRY",
                    "GOPROXY",
                    "HOMEBREW_BOTTLE_DOMAIN",
                    "HF_ENDPOINT",
                    "PUB_HOSTED_URL",
                ],
            ),
        ];
        for (family, names) in cases {
            for name in *names {
                let found = family_of(name).unwrap_or_else(|| panic!("`{name}` is refused"));
                // Several families may fit a name; what matters is that one does,
                // and the name's own family is among those that fit.
                assert!(
                    FAMILIES[*family].has(&name.to_ascii_uppercase()),
                    "`{name}` belongs to family {family} (found: {})",
                    found.reason
                );
                assert!(refused_name(name).is_some());
            }
        }
    }

    #[test]
    fn connection_settings_are_not_refused() {
        for name in [
            "DATABASE_URL",
            "DB_HOST",
            "DB_PORT",
            "DB_NAME",
            "DB_USER",
            "DB_PASSWORD",
            "AUTH_DB_URL",
            "QDRANT_URL",
            "QDRANT_API_KEY",
            "QDRANT_COLLECTION",
            "CHUNKER_URL",
            "REDIS_URL",
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_DB",
            "FILESERVER_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
            "PGSSLMODE",
            "REDIS_KEY_PREFIX",
            // Natural names of other service kinds a third party may add.
            "DB_OPTIONS",
            "MONGO_OPTIONS",
            "API_BASE_PATH",
            "MYSQL_SOCKET_PATH",
            "S3_PATH",
            "S3_BUCKET",
            "APP_PROFILE",
            "TOXIPROXY_URL",
            "NODE_ENV",
            "KAFKA_BOOTSTRAP_SERVERS",
            "RABBITMQ_URL",
            "AMQP_URL",
            "ELASTICSEARCH_URL",
            "MONGODB_URI",
            "MYSQL_HOST",
            "MYSQL_DATABASE",
            "SMTP_HOST",
            "SMTP_PORT",
            "MAIL_FROM",
            "MINIO_ROOT_USER",
        ] {
            assert_eq!(refused_name(name), None, "{name}");
        }
    }

    #[test]
    fn paths_into_hsm_are_found_however_written() {
        let t = |s: &str| Text::literal(s);
        for bad in [
            ".hsm/raw",
            "./.hsm/raw/git",
            "/home/u/app/.hsm/raw",
            "..\\app\\.HSM\\raw",
            "file:.hsm/raw/x.conf",
            "%2ehsm/raw",
            "%252Ehsm%2Fraw",
            "a:b:.hsm",
            ".hsm",
            "@.hsm/raw/args",
            "x|.hsm",
            "?.hsm",
            "#.hsm",
            "!.hsm",
            "*.hsm",
            "+.hsm",
            "&.hsm",
            "~.hsm",
            "`.hsm`",
            ".hsm.",
        ] {
            assert!(points_into_hsm(&t(bad)), "{bad}");
        }
        for fine in [
            "db.hsm.example.com",
            "postgresql://u@h/hsm",
            "hsm",
            "my.hsm",
            ".hsmrc-not",
            "127.0.0.1",
            "a..hsm",
            ".hsm_x",
        ] {
            assert!(!points_into_hsm(&t(fine)), "{fine}");
        }
    }

    #[test]
    fn control_and_invisible_characters_are_found_in_literals() {
        assert_eq!(hidden_in(&Text::literal("a\nLD_PRELOAD=/x.so")), Some('\n'));
        assert_eq!(hidden_in(&Text::literal("ok\u{1b}[2J")), Some('\u{1b}'));
        assert_eq!(hidden_in(&Text::literal(".h\u{200c}sm/x")), Some('\u{200c}'));
        assert_eq!(hidden_in(&Text::literal("fine: é ✓")), None);
    }
}
