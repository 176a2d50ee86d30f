//! Progress for long commands (`sync`, `down`): the CLI's [`Reporter`]. On a
//! terminal, spinners for image pulls (with the bytes of every layer) and readiness
//! waits, drawn by indicatif on stderr; otherwise one plain line per step. What was
//! changed is always one line (`created container …`), unless `-q`. `-v` adds each
//! Docker operation, `-vv` each failed probe attempt and each layer's status.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use hsm_exec::report::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{Output, Style, paint};

/// Per image, per layer: bytes done and total.
type Layers = HashMap<String, BTreeMap<String, (u64, u64)>>;

/// Renders progress on stderr.
pub(crate) struct Progress {
    quiet: bool,
    verbosity: u8,
    color: bool,
    /// Spinners, when stderr is a terminal.
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    layers: Mutex<Layers>,
}

impl Progress {
    /// Progress as `out` says (quiet, verbosity, colours).
    pub(crate) fn new(out: &Output) -> Self {
        let fancy = !out.is_quiet() && std::io::stderr().is_terminal() && std::env::var_os("HSM_NO_PROGRESS").is_none();
        Self {
            quiet: out.is_quiet(),
            verbosity: out.verbosity(),
            color: out.color_err(),
            multi: fancy.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))),
            bars: Mutex::new(HashMap::new()),
            layers: Mutex::new(HashMap::new()),
        }
    }

    /// Prints a line on stderr without breaking the spinners.
    pub(crate) fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    fn spinner(&self, key: String, message: String) {
        let Some(m) = &self.multi else { return };
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bars.lock().expect("bars lock").insert(key, bar);
    }

    fn finish(&self, key: &str) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(key) {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
    }

    fn update(&self, key: &str, message: String) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(key) {
            bar.set_message(message);
        }
    }

    /// Clears every spinner (before an error is printed).
    pub(crate) fn clear(&self) {
        let keys: Vec<String> = self.bars.lock().expect("bars lock").keys().cloned().collect();
        for k in keys {
            self.finish(&k);
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event<'_>) {
        if self.quiet {
            return;
        }
        let name = |s: &str| paint(self.color, Style::Name, s);
        let dim = |s: &str| paint(self.color, Style::Dim, s);
        match event {
            Event::Operation { what, .. } => {
                if self.verbosity >= 1 {
                    self.line(&dim(&format!("docker: {}", safe(what))));
                }
            }
            Event::PullStarted { image } => {
                if self.multi.is_some() {
                    self.spinner(format!("pull {image}"), format!("pulling {}", name(image)));
                } else {
                    self.line(&format!("pulling image {image}"));
                }
            }
            Event::PullProgress { image, layer, status, current, total } => {
                if self.verbosity >= 2 && self.multi.is_none() {
                    self.line(&dim(&format!("{image}: {}: {}", safe(layer), safe(status))));
                }
                if self.multi.is_none() {
                    return;
                }
                let (done, all, count) = {
                    let mut layers = self.layers.lock().expect("layers lock");
                    let image_layers = layers.entry(image.to_string()).or_default();
                    let entry = image_layers.entry(layer.to_string()).or_insert((0, 0));
                    if let (Some(c), Some(t)) = (current, total) {
                        *entry = (c, t.max(entry.1));
                    }
                    if status.starts_with("Pull complete") || status.starts_with("Already exists") {
                        entry.0 = entry.1;
                    }
                    let done: u64 = image_layers.values().map(|l| l.0).sum();
                    let all: u64 = image_layers.values().map(|l| l.1).sum();
                    (done, all, image_layers.len())
                };
                let bytes = if all > 0 {
                    format!("{} / {}", indicatif::HumanBytes(done), indicatif::HumanBytes(all))
                } else {
                    String::new()
                };
                self.update(&format!("pull {image}"), format!("pulling {} {count} layers {bytes}", name(image)));
            }
            Event::PullFinished { image, ok } => {
                self.finish(&format!("pull {image}"));
                if ok {
                    self.line(&format!("pulled image {}", name(image)));
                }
            }
            Event::WaitStarted { service, probe, timeout_ms } => {
                if self.multi.is_some() {
                    self.spinner(format!("wait {service}"), format!("waiting for {} to be ready", name(service)));
                } else {
                    self.line(&format!("waiting for {service} to be ready (up to {}s)", timeout_ms / 1000));
                }
                if self.verbosity >= 1 {
                    self.line(&dim(&format!("probe of {service}: {}", safe(probe))));
                }
            }
            Event::WaitRetry { service, failure } => {
                if self.verbosity >= 2 {
                    self.line(&dim(&format!("{service} not ready yet: {}", safe(failure))));
                }
                self.update(
                    &format!("wait {service}"),
                    format!("waiting for {} to be ready {}", name(service), dim(&format!("({})", safe(failure)))),
                );
            }
            Event::WaitFinished { service, ok, elapsed_ms } => {
                self.finish(&format!("wait {service}"));
                if ok {
                    self.line(&format!(
                        "{} is ready {}",
                        name(service),
                        dim(&format!("({:.1}s)", elapsed_ms as f64 / 1000.0))
                    ));
                }
            }
            Event::TaskOutput { task, line } => {
                self.line(&format!("{} {}", name(&format!("{task} |")), safe(line)));
            }
            Event::Changed(change) => {
                let reason = change.reason.as_deref().map(|r| dim(&format!(" ({})", safe(r)))).unwrap_or_default();
                self.line(&format!("{} {}{reason}", change.action.verb(), safe(&change.subject)));
            }
            Event::Warning(text) => {
                let head = if self.color { "\x1b[1;33mwarning\x1b[0m" } else { "warning" };
                self.line(&format!("{head}: {}", safe(text)));
            }
        }
    }
}

/// Text from outside hsm (a container's or a registry's words, a plugin's values)
/// as it may be shown: control characters escaped, so it can't act on the terminal.
fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    hsm_model::text::printable(s)
}
