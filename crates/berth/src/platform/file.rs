//! The config file (TOML): its schema, and loading it into a validated
//! [`Config`] with every problem reported as `FILE:LINE:COLUMN: KEY: what`.
//!
//! ```toml
//! [server]
//! addr = "0.0.0.0:8080"
//! tls = { cert = "cert.pem", key = "key.pem" }
//!
//! [[apps]]
//! name = "shop"
//! component = "shop.wasm"             # or components = ["auth.wasm", "shop.wasm"]
//! routes = ["shop.example.com", "example.com/shop"]
//! env = { LOG_LEVEL = "debug" }
//! config = { greeting = "hello", token = { from_env = "SHOP_TOKEN" } }
//! allow_outbound = ["api.example.com"]
//! ```
//!
//! Relative paths are relative to the file. Unknown keys are errors. Every
//! key not written takes the documented default (the `DEFAULT_*` constants
//! of each crate). `config` values may come from the environment
//! (`{ from_env = "NAME" }`) or a file (`{ from_file = "path" }`, trailing
//! newline dropped); they are never logged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{AppConfig, ComponentSource, Config};
use crate::routes::Route;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    apps: Vec<Spanned<AppSection>>,
}

/// `[server]`: the front door and the shared engine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    addr: Option<Spanned<String>>,
    admin_addr: Option<Spanned<String>>,
    tls: Option<Spanned<TlsSetting>>,
    header_read_timeout_secs: Option<Spanned<u64>>,
    idle_timeout_secs: Option<Spanned<u64>>,
    write_timeout_secs: Option<Spanned<u64>>,
    h2_keep_alive_interval_secs: Option<Spanned<u64>>,
    drain_timeout_secs: Option<Spanned<u64>>,
    shutdown_delay_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<usize>>,
    /// 0: tokio's work-stealing threads; unset: one per CPU.
    connection_threads: Option<usize>,
    h2_max_concurrent_streams: Option<Spanned<u32>>,
    max_header_bytes: Option<Spanned<usize>>,
    max_uri_bytes: Option<Spanned<usize>>,
    max_headers: Option<Spanned<usize>>,
    /// Instances of all apps together (the shared pool's size).
    max_instances: Option<Spanned<u32>>,
    /// Compilation cache directory; `cache = false` compiles in memory.
    cache_dir: Option<Spanned<String>>,
    cache: Option<bool>,
}

/// `tls = { cert, key }`, or several pairs chosen by SNI (the first is
/// the default): `tls = [{ cert, key }, { cert, key }]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TlsSetting {
    One(TlsSection),
    Many(Vec<TlsSection>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: String,
    key: String,
}

/// One `[[apps]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppSection {
    name: Spanned<String>,
    component: Option<Spanned<String>>,
    components: Option<Spanned<Vec<Spanned<String>>>>,
    routes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<ConfigValue>>,
    #[serde(default)]
    allow_outbound: Vec<Spanned<String>>,
    #[serde(default)]
    h2c_outbound: Vec<Spanned<String>>,
    #[serde(default)]
    ca_files: Vec<Spanned<String>>,
    outbound_connect_timeout_ms: Option<Spanned<u64>>,
    outbound_first_byte_timeout_ms: Option<Spanned<u64>>,
    outbound_between_bytes_timeout_ms: Option<Spanned<u64>>,
    cpu_time_limit_ms: Option<Spanned<u64>>,
    wall_time_limit_ms: Option<Spanned<u64>>,
    memory_limit_mib: Option<Spanned<u64>>,
    max_component_mib: Option<Spanned<u64>>,
    max_compile_secs: Option<Spanned<u64>>,
    max_request_body_mib: Option<Spanned<u64>>,
    request_body_idle_timeout_secs: Option<Spanned<u64>>,
    max_concurrent_requests: Option<Spanned<usize>>,
    admission_queue: Option<Spanned<usize>>,
    admission_wait_ms: Option<Spanned<u64>>,
    reuse: Option<Spanned<u32>>,
    concurrent_requests: Option<Spanned<usize>>,
    instance_requests: Option<Spanned<u32>>,
    /// Guest output per second, KiB, all instances together (0: no limit).
    guest_log_rate_kib: Option<u64>,
    #[serde(default)]
    pre_init: bool,
}

/// A `config` value: literal, or read from the environment or a file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ConfigValue {
    Literal(String),
    FromEnv(FromEnv),
    FromFile(FromFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromEnv {
    from_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromFile {
    from_file: String,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, when the problem has a place in the file.
    pub at: Option<(usize, usize)>,
    /// The key (`apps[1].routes[0]`), when it has one.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A config file that cannot be used: every problem found, each naming the
/// file, line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match problem.at {
                Some((line, column)) => write!(f, "{path}:{line}:{column}: ")?,
                None => write!(f, "{path}: ")?,
            }
            if !problem.key.is_empty() {
                write!(f, "{}: ", problem.key)?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

/// Reads and validates the config file at `path` (components are not
/// compiled here: see [`super::Platform::build`]).
pub fn load(path: &Path) -> Result<Config, FileError> {
    let text = std::fs::read_to_string(path).map_err(|err| FileError {
        path: path.to_owned(),
        problems: vec![Problem {
            at: None,
            key: String::new(),
            message: format!("cannot read the config file: {err}"),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|problems| FileError {
        path: path.to_owned(),
        problems,
    })
}

/// The component files a config file names, as far as it parses (none
/// when it does not): what a watcher must look at besides the file, even
/// when the version naming them was refused.
pub fn component_paths(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(file) = toml::from_str::<FileConfig>(&text) else {
        return Vec::new();
    };
    let base = path.parent().unwrap_or(Path::new("."));
    file.apps
        .iter()
        .flat_map(|app| {
            let app = app.get_ref();
            app.component
                .iter()
                .chain(app.components.iter().flat_map(|c| c.get_ref().iter()))
                .map(|c| base.join(c.get_ref()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Parses and validates config `text` whose relative paths are relative to
/// `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut checker = Checker {
        text,
        base,
        problems: Vec::new(),
        claimed: HashMap::new(),
    };
    let file: FileConfig = match toml::from_str(text) {
        Ok(file) => file,
        Err(err) => {
            let at = err.span().map(|span| checker.line_column(span));
            return Err(vec![Problem {
                at,
                key: String::new(),
                message: err.message().trim().to_owned(),
            }]);
        }
    };
    let config = checker.config(file);
    let mut problems = checker.problems;
    if problems.is_empty()
        && let Err(invalid) = config.validate()
    {
        problems.extend(invalid.into_iter().map(|message| Problem {
            at: None,
            key: String::new(),
            message,
        }));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| p.at.unwrap_or((usize::MAX, 0)));
        Err(problems)
    }
}

/// Turns the parsed file into a [`Config`], collecting problems.
struct Checker<'a> {
    text: &'a str,
    base: &'a Path,
    problems: Vec<Problem>,
    /// Every route seen so far and the app that wrote it.
    claimed: HashMap<Route, String>,
}

impl Checker<'_> {
    fn line_column(&self, span: Range<usize>) -> (usize, usize) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
        (line, column)
    }

    fn problem(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let at = Some(self.line_column(span));
        self.problems.push(Problem {
            at,
            key: key.into(),
            message: message.into(),
        });
    }

    fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// Sets `slot` from a duration or count that must not be zero (see
    /// [`Self::positive`]); leaves it alone when the key is not written.
    fn set_positive<T: Copy + PartialEq + Default, U>(
        &mut self,
        value: Option<&Spanned<T>>,
        key: &str,
        slot: &mut U,
        map: impl FnOnce(T) -> U,
    ) {
        if let Some(value) = self.positive(value, key) {
            *slot = map(value);
        }
    }

    /// A duration or count that must not be zero.
    fn positive<T: Copy + PartialEq + Default>(
        &mut self,
        value: Option<&Spanned<T>>,
        key: &str,
    ) -> Option<T> {
        let value = value?;
        if *value.get_ref() == T::default() {
            self.problem(value.span(), key, "must be greater than zero");
            return None;
        }
        Some(*value.get_ref())
    }

    fn config(&mut self, file: FileConfig) -> Config {
        let server = self.server(&file.server);
        let several = file.apps.len() > 1;
        let apps = file
            .apps
            .iter()
            .enumerate()
            .filter_map(|(index, app)| {
                let mut built = self.app(index, app.get_ref(), &server)?;
                if several && app.get_ref().max_concurrent_requests.is_none() {
                    // Beside other apps, one app may take at most half
                    // the shared pool unless its places are written.
                    let half = (server.engine.max_instances as usize / 2).max(1);
                    built.admission.max_concurrent = half;
                    if app.get_ref().admission_queue.is_none() {
                        built.admission.max_queued = half;
                    }
                }
                Some(built)
            })
            .collect();
        Config {
            server: server.server,
            engine: server.engine,
            cache_dir: server.cache_dir,
            apps,
        }
    }

    fn server(&mut self, section: &ServerSection) -> ServerParts {
        let mut server = crate::ServerConfig {
            connection_threads: section
                .connection_threads
                .unwrap_or_else(crate::config::connection_threads_per_core),
            ..crate::ServerConfig::default()
        };
        if let Some(addr) = &section.addr {
            match addr.get_ref().parse::<SocketAddr>() {
                Ok(parsed) => server.addr = parsed,
                Err(_) => self.problem(
                    addr.span(),
                    "server.addr",
                    format!(
                        "`{}` is not an address (HOST:PORT, e.g. 0.0.0.0:8080)",
                        addr.get_ref()
                    ),
                ),
            }
        }
        if let Some(addr) = &section.admin_addr {
            match addr.get_ref().parse::<SocketAddr>() {
                Ok(parsed) => server.admin_addr = Some(parsed),
                Err(_) => self.problem(
                    addr.span(),
                    "server.admin_addr",
                    format!(
                        "`{}` is not an address (HOST:PORT, e.g. 127.0.0.1:9090)",
                        addr.get_ref()
                    ),
                ),
            }
        }
        if let Some(tls) = &section.tls {
            let sections = match tls.get_ref() {
                TlsSetting::One(one) => std::slice::from_ref(one),
                TlsSetting::Many(many) => many.as_slice(),
            };
            let pairs: Vec<_> = sections
                .iter()
                .map(|pair| crate::tls::TlsPaths {
                    cert: self.path(&pair.cert),
                    key: self.path(&pair.key),
                })
                .collect();
            if pairs.is_empty() {
                self.problem(tls.span(), "server.tls", "lists no certificate");
            } else {
                match crate::tls::Tls::load_all(pairs) {
                    Ok(loaded) => server.tls = Some(loaded),
                    Err(err) => self.problem(tls.span(), "server.tls", err.to_string()),
                }
            }
        }
        let secs = Duration::from_secs;
        self.set_positive(
            section.header_read_timeout_secs.as_ref(),
            "server.header_read_timeout_secs",
            &mut server.header_read_timeout,
            secs,
        );
        self.set_positive(
            section.idle_timeout_secs.as_ref(),
            "server.idle_timeout_secs",
            &mut server.idle_timeout,
            secs,
        );
        self.set_positive(
            section.write_timeout_secs.as_ref(),
            "server.write_timeout_secs",
            &mut server.write_timeout,
            secs,
        );
        self.set_positive(
            section.h2_keep_alive_interval_secs.as_ref(),
            "server.h2_keep_alive_interval_secs",
            &mut server.h2_keep_alive_interval,
            secs,
        );
        if let Some(v) = &section.shutdown_delay_secs {
            server.shutdown_delay = secs(*v.get_ref());
        }
        if let Some(v) = &section.drain_timeout_secs {
            server.drain_timeout = secs(*v.get_ref());
        }
        self.set_positive(
            section.max_connections.as_ref(),
            "server.max_connections",
            &mut server.max_connections,
            |v| v,
        );
        self.set_positive(
            section.h2_max_concurrent_streams.as_ref(),
            "server.h2_max_concurrent_streams",
            &mut server.h2_max_concurrent_streams,
            |v| v,
        );
        self.set_positive(
            section.max_header_bytes.as_ref(),
            "server.max_header_bytes",
            &mut server.max_header_bytes,
            |v| v,
        );
        self.set_positive(
            section.max_uri_bytes.as_ref(),
            "server.max_uri_bytes",
            &mut server.max_uri_bytes,
            |v| v,
        );
        self.set_positive(
            section.max_headers.as_ref(),
            "server.max_headers",
            &mut server.max_headers,
            |v| v,
        );
        let mut engine = berth_runtime::EngineConfig::of(&berth_runtime::RuntimeConfig::default());
        self.set_positive(
            section.max_instances.as_ref(),
            "server.max_instances",
            &mut engine.max_instances,
            |v| v,
        );
        let cache_dir = match (section.cache, &section.cache_dir) {
            (Some(false), _) => None,
            (_, Some(dir)) => Some(self.path(dir.get_ref())),
            (_, None) => super::default_cache_dir(),
        };
        ServerParts {
            server,
            engine,
            cache_dir,
        }
    }

    fn app(
        &mut self,
        index: usize,
        section: &AppSection,
        server: &ServerParts,
    ) -> Option<AppConfig> {
        let key = |field: &str| format!("apps[{index}].{field}");
        let before = self.problems.len();
        let name = section.name.get_ref().trim().to_owned();
        if name.is_empty() {
            self.problem(section.name.span(), key("name"), "an app needs a name");
        }
        let file = |path: PathBuf| ComponentSource::File(path);
        let components: Vec<ComponentSource> = match (&section.component, &section.components) {
            (Some(one), None) => vec![file(self.path(one.get_ref()))],
            (None, Some(many)) if !many.get_ref().is_empty() => many
                .get_ref()
                .iter()
                .map(|c| file(self.path(c.get_ref())))
                .collect(),
            (None, Some(many)) => {
                self.problem(many.span(), key("components"), "lists no component");
                Vec::new()
            }
            (Some(one), Some(_)) => {
                self.problem(
                    one.span(),
                    key("component"),
                    "write `component` or `components`, not both",
                );
                Vec::new()
            }
            (None, None) => {
                self.problem(
                    section.name.span(),
                    key("component"),
                    "an app needs `component = \"app.wasm\"` (or `components = [...]` for a chain)",
                );
                Vec::new()
            }
        };
        let all_components = section
            .component
            .iter()
            .chain(section.components.iter().flat_map(|c| c.get_ref().iter()));
        for (i, component) in all_components.enumerate() {
            let path = self.path(component.get_ref());
            if !path.is_file() {
                let field = if section.component.is_some() {
                    "component".to_owned()
                } else {
                    format!("components[{i}]")
                };
                self.problem(
                    component.span(),
                    key(&field),
                    format!("no component file at {}", path.display()),
                );
            }
        }
        if section.routes.get_ref().is_empty() {
            self.problem(
                section.routes.span(),
                key("routes"),
                "an app needs at least one route (`*` routes every request to it)",
            );
        }
        let mut routes = Vec::new();
        for (i, route) in section.routes.get_ref().iter().enumerate() {
            let route_key = key(&format!("routes[{i}]"));
            match Route::parse(route.get_ref()) {
                Ok(parsed) => match self.claimed.get(&parsed) {
                    Some(first) => {
                        let message =
                            format!("route `{parsed}` is already claimed by app `{first}`");
                        self.problem(route.span(), route_key, message);
                    }
                    None => {
                        self.claimed.insert(parsed.clone(), name.clone());
                        routes.push(parsed);
                    }
                },
                Err(err) => self.problem(route.span(), route_key, err.to_string()),
            }
        }

        let mut runtime = berth_runtime::RuntimeConfig {
            max_instances: server.engine.max_instances,
            cache_dir: server.cache_dir.clone(),
            env: section
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pre_init: section.pre_init,
            ..berth_runtime::RuntimeConfig::default()
        };
        let mut vars = Vec::new();
        for (name, value) in &section.config {
            let value_key = key(&format!("config.{name}"));
            match value.get_ref() {
                ConfigValue::Literal(text) => vars.push((name.clone(), text.clone())),
                ConfigValue::FromEnv(from) => match std::env::var(&from.from_env) {
                    Ok(text) => vars.push((name.clone(), text)),
                    Err(_) => self.problem(
                        value.span(),
                        value_key,
                        format!(
                            "environment variable `{}` is not set (or not UTF-8)",
                            from.from_env
                        ),
                    ),
                },
                ConfigValue::FromFile(from) => {
                    let path = self.path(&from.from_file);
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            let text = text.strip_suffix('\n').unwrap_or(&text);
                            let text = text.strip_suffix('\r').unwrap_or(text);
                            vars.push((name.clone(), text.to_owned()));
                        }
                        Err(err) => self.problem(
                            value.span(),
                            value_key,
                            format!("cannot read {}: {err}", path.display()),
                        ),
                    }
                }
            }
        }
        runtime.config_vars = vars.into_iter().collect();
        let ms = Duration::from_millis;
        self.set_positive(
            section.cpu_time_limit_ms.as_ref(),
            &key("cpu_time_limit_ms"),
            &mut runtime.cpu_time_limit,
            ms,
        );
        self.set_positive(
            section.wall_time_limit_ms.as_ref(),
            &key("wall_time_limit_ms"),
            &mut runtime.wall_time_limit,
            ms,
        );
        if let Some(v) = self.positive(section.memory_limit_mib.as_ref(), &key("memory_limit_mib"))
        {
            match usize::try_from(v).ok().and_then(|v| v.checked_mul(1 << 20)) {
                Some(bytes) => runtime.memory_limit = bytes,
                None => self.problem(
                    section
                        .memory_limit_mib
                        .as_ref()
                        .map_or(0..0, Spanned::span),
                    key("memory_limit_mib"),
                    "is too large",
                ),
            }
        }
        runtime.reuse = self
            .positive(section.reuse.as_ref(), &key("reuse"))
            .and_then(std::num::NonZeroU32::new);
        self.set_positive(
            section.concurrent_requests.as_ref(),
            &key("concurrent_requests"),
            &mut runtime.concurrent_requests,
            |v| v,
        );
        self.set_positive(
            section.instance_requests.as_ref(),
            &key("instance_requests"),
            &mut runtime.instance_requests,
            |v| v,
        );

        if let Some(kib) = section.guest_log_rate_kib {
            runtime.log_rate = kib.saturating_mul(1024);
        }
        self.set_positive(
            section.max_component_mib.as_ref(),
            &key("max_component_mib"),
            &mut runtime.max_component_bytes,
            |mib| usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        );
        self.set_positive(
            section.max_compile_secs.as_ref(),
            &key("max_compile_secs"),
            &mut runtime.max_compile_time,
            Duration::from_secs,
        );

        let mut body_limits = crate::limits::BodyLimits::default();
        if let Some(v) = &section.max_request_body_mib {
            body_limits.max_bytes = v.get_ref().saturating_mul(1 << 20);
        }
        self.set_positive(
            section.request_body_idle_timeout_secs.as_ref(),
            &key("request_body_idle_timeout_secs"),
            &mut body_limits.idle_timeout,
            Duration::from_secs,
        );

        let places = self
            .positive(
                section.max_concurrent_requests.as_ref(),
                &key("max_concurrent_requests"),
            )
            .unwrap_or(server.engine.max_instances as usize);
        let mut admission = crate::admission::AdmissionLimits::new(places);
        if let Some(v) = &section.admission_queue {
            admission.max_queued = *v.get_ref();
        }
        if let Some(v) = &section.admission_wait_ms {
            admission.wait = ms(*v.get_ref());
        }

        let mut outbound = berth_outbound::OutboundConfig {
            allow: self.patterns(&section.allow_outbound, &key("allow_outbound")),
            h2c_hosts: self.patterns(&section.h2c_outbound, &key("h2c_outbound")),
            ca_files: section
                .ca_files
                .iter()
                .map(|f| self.path(f.get_ref()))
                .collect(),
            loop_identity: berth_outbound::config::process_loop_identity(),
            ..Default::default()
        };
        self.set_positive(
            section.outbound_connect_timeout_ms.as_ref(),
            &key("outbound_connect_timeout_ms"),
            &mut outbound.connect_timeout,
            ms,
        );
        self.set_positive(
            section.outbound_first_byte_timeout_ms.as_ref(),
            &key("outbound_first_byte_timeout_ms"),
            &mut outbound.first_byte_timeout,
            ms,
        );
        self.set_positive(
            section.outbound_between_bytes_timeout_ms.as_ref(),
            &key("outbound_between_bytes_timeout_ms"),
            &mut outbound.between_bytes_timeout,
            ms,
        );

        if self.problems.len() > before {
            return None;
        }
        Some(AppConfig {
            name,
            components,
            routes,
            runtime,
            body_limits,
            admission,
            outbound,
        })
    }

    fn patterns(
        &mut self,
        patterns: &[Spanned<String>],
        key: &str,
    ) -> Vec<berth_outbound::HostPattern> {
        let mut parsed = Vec::new();
        for (i, pattern) in patterns.iter().enumerate() {
            match pattern.get_ref().parse() {
                Ok(p) => parsed.push(p),
                Err(err) => self.problem(pattern.span(), format!("{key}[{i}]"), format!("{err}")),
            }
        }
        parsed
    }
}

/// The `[server]` section, mapped.
struct ServerParts {
    server: crate::ServerConfig,
    engine: berth_runtime::EngineConfig,
    cache_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with two (empty) component files.
    fn dir() -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("berth-file-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wasm"), b"").unwrap();
        std::fs::write(dir.join("b.wasm"), b"").unwrap();
        std::fs::write(dir.join("token"), b"s3cret\n").unwrap();
        dir
    }

    fn problems(text: &str) -> Vec<String> {
        let dir = dir();
        let file = FileError {
            path: PathBuf::from("berth.toml"),
            problems: parse(text, &dir).unwrap_err(),
        };
        file.to_string().lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_good_file_maps_onto_the_config_model() {
        let dir = dir();
        let text = r#"
            [server]
            addr = "127.0.0.1:9000"
            admin_addr = "127.0.0.1:9090"
            max_instances = 64
            drain_timeout_secs = 5
            shutdown_delay_secs = 3
            connection_threads = 3

            [[apps]]
            name = "shop"
            component = "a.wasm"
            routes = ["shop.example.com", "example.com/shop"]
            env = { LOG = "debug" }
            config = { greeting = "hello", token = { from_file = "token" } }
            allow_outbound = ["api.example.com"]
            memory_limit_mib = 32
            max_concurrent_requests = 8
            max_compile_secs = 45

            [[apps]]
            name = "chain"
            components = ["a.wasm", "b.wasm"]
            routes = ["*"]
            reuse = 10
        "#;
        let config = parse(text, &dir).unwrap();
        assert_eq!(config.server.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.server.drain_timeout, Duration::from_secs(5));
        assert_eq!(config.server.shutdown_delay, Duration::from_secs(3));
        assert_eq!(config.server.connection_threads, 3);
        assert_eq!(
            config.server.admin_addr,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(config.engine.max_instances, 64);
        let shop = &config.apps[0];
        assert_eq!(shop.name, "shop");
        assert_eq!(
            shop.components[0].path(),
            Some(dir.join("a.wasm").as_path())
        );
        let routes: Vec<String> = shop.routes.iter().map(ToString::to_string).collect();
        assert_eq!(routes, ["shop.example.com", "example.com/shop"]);
        assert_eq!(shop.runtime.env, [("LOG".to_owned(), "debug".to_owned())]);
        assert_eq!(shop.runtime.config_vars.get("greeting"), Some("hello"));
        assert_eq!(shop.runtime.config_vars.get("token"), Some("s3cret"));
        assert_eq!(shop.runtime.memory_limit, 32 << 20);
        assert_eq!(shop.runtime.max_compile_time, Duration::from_secs(45));
        assert_eq!(shop.admission.max_concurrent, 8);
        assert_eq!(shop.outbound.allow.len(), 1);
        // Unset keys take the defaults; beside another app, an app's places
        // default to half the pool.
        let chain = &config.apps[1];
        assert_eq!(chain.components.len(), 2);
        assert_eq!(
            chain.runtime.max_compile_time,
            berth_runtime::config::DEFAULT_MAX_COMPILE_TIME
        );
        assert_eq!(chain.admission.max_concurrent, 32);
        assert_eq!(chain.admission.max_queued, 32);
        let alone = parse(
            "[[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroutes = [\"*\"]\n",
            &dir,
        )
        .unwrap();
        assert_eq!(alone.apps[0].admission.max_concurrent, 1000);
        assert_eq!(chain.runtime.reuse.map(|n| n.get()), Some(10));
        assert_eq!(
            chain.runtime.cpu_time_limit,
            berth_runtime::config::DEFAULT_CPU_TIME_LIMIT
        );
        // Secrets never reach a log line through Debug.
        assert!(!format!("{shop:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let unknown = problems(
            "[[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroutes = [\"*\"]\ncolour = 1\n",
        );
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(
            unknown[0].starts_with("berth.toml:5:1: unknown field `colour`"),
            "{unknown:?}"
        );

        let text = r#"
[[apps]]
name = "one"
component = "missing.wasm"
routes = ["a.test", "b.test:80"]

[[apps]]
name = "two"
component = "a.wasm"
routes = ["a.test", "*/x"]
config = { key = { from_env = "BERTH_TEST_SURELY_UNSET" } }
cpu_time_limit_ms = 0
"#;
        let found = problems(text);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].starts_with("berth.toml:4:13: apps[0].component: no component file at"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with(
                "berth.toml:5:21: apps[0].routes[1]: `b.test:80`: routes match host names"
            ),
            "{found:?}"
        );
        assert_eq!(
            found[2],
            "berth.toml:10:11: apps[1].routes[0]: route `a.test` is already claimed by app `one`"
        );
        assert!(found[3].starts_with("berth.toml:11:18: apps[1].config.key: environment variable `BERTH_TEST_SURELY_UNSET`"), "{found:?}");
        assert_eq!(
            found[4],
            "berth.toml:12:21: apps[1].cpu_time_limit_ms: must be greater than zero"
        );
    }

    #[test]
    fn tls_takes_one_pair_or_several_chosen_by_sni() {
        let dir = dir();
        for name in ["a", "b"] {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![format!("{name}.test")])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        let one = "[server]\ntls = { cert = \"a.pem\", key = \"a.key\" }\n";
        assert!(parse(one, &dir).unwrap().server.tls.is_some());
        let two = "[server]\ntls = [{ cert = \"a.pem\", key = \"a.key\" }, \
                   { cert = \"b.pem\", key = \"b.key\" }]\n";
        assert!(parse(two, &dir).unwrap().server.tls.is_some());
        let bad = "[server]\ntls = [{ cert = \"a.pem\", key = \"gone.key\" }]\n";
        let found = parse(bad, &dir).unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].at, found[0].key.as_str()),
            (Some((2, 7)), "server.tls")
        );
        assert!(found[0].message.starts_with("cannot read "), "{found:?}");
        assert!(found[0].message.contains("gone.key"), "{found:?}");
    }

    #[test]
    fn an_app_needs_a_component_and_a_route() {
        let found = problems("[[apps]]\nname = \"a\"\nroutes = []\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("apps[0].component: an app needs `component"),
            "{found:?}"
        );
        assert!(
            found[1].contains("apps[0].routes: an app needs at least one route"),
            "{found:?}"
        );
        let both = problems(
            "[[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncomponents = [\"b.wasm\"]\nroutes = [\"*\"]\n",
        );
        assert!(both[0].contains("not both"), "{both:?}");
        let twice = problems(
            "[[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroutes = [\"x.test\"]\n\
             [[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroutes = [\"y.test\"]\n",
        );
        assert!(twice[0].contains("two apps are named `a`"), "{twice:?}");
    }
}
