//! Many apps in one process.
//!
//! * [`Config`]: the one configuration model. The config file
//!   ([`file::load`]), the CLI's flags (a one-app config routed at `*`) and
//!   embedders all fill it; [`Config::validate`] checks it.
//! * [`Platform`]: every app of a config built on one set of shared
//!   [`Engines`] (one instance pool and epoch ticker, however many apps),
//!   each app with its own limits, admission places (so one app cannot take
//!   every slot), egress policy and outgoing connection pool, and the
//!   routing table ([`crate::routes`]) as one immutable value swapped whole
//!   by [`Platform::reload`]: requests in flight finish on the apps they
//!   started on.
//! * [`Router`]: the `tower::Service` that routes each request to its app
//!   (`404` when no route matches).

pub mod file;
mod router;
pub mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use berth_runtime::{EngineConfig, Engines, LoadError, Runtime, RuntimeConfig, Source};
use http::uri::Authority;
use sha2::{Digest, Sha256};

use crate::admission::AdmissionLimits;
use crate::config::ServerConfig;
use crate::limits::BodyLimits;
use crate::routes::{Route, Routes};
use crate::service::WasiHttpService;

pub use router::Router;

/// Everything a platform runs: the front door, the shared engine and the
/// apps. Read one from a TOML file ([`file::load`]) or fill it in code:
///
/// ```
/// use berth::platform::{AppConfig, ComponentSource, Config};
/// let mut config = Config::default();
/// config.apps.push(AppConfig {
///     name: "demo".into(),
///     components: vec![ComponentSource::Bytes {
///         name: "the built-in demo".into(),
///         bytes: berth::demo::COMPONENT.into(),
///     }],
///     routes: vec![berth::routes::Route::parse("*").unwrap()],
///     ..AppConfig::default()
/// });
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The front door (listener, TLS, connection limits).
    pub server: ServerConfig,
    /// The shared engines' pool and tick. Its `max_memory` is raised to the
    /// largest app memory limit when the platform is built.
    pub engine: EngineConfig,
    /// Where compiled components are cached; `None` compiles in memory.
    pub cache_dir: Option<PathBuf>,
    /// The apps, each with its routes.
    pub apps: Vec<AppConfig>,
}

/// Where a component's bytes come from.
#[derive(Clone)]
pub enum ComponentSource {
    /// A `.wasm` file, read when the app is built (and on every reload).
    File(PathBuf),
    /// Bytes in memory (the CLI's built-in demo, an embedder's own).
    Bytes {
        /// Names the component in logs and errors.
        name: String,
        /// The component.
        bytes: Arc<[u8]>,
    },
}

impl std::fmt::Debug for ComponentSource {
    /// The file, or the name and size of in-memory bytes (not the bytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Bytes { name, bytes } => f
                .debug_struct("Bytes")
                .field("name", name)
                .field("len", &bytes.len())
                .finish(),
        }
    }
}

impl ComponentSource {
    /// The file, if the component comes from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Bytes { .. } => None,
        }
    }
}

/// One app: its component(s), routes and policy.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Names the app in logs and errors; unique in a config.
    pub name: String,
    /// One component, or a wasi:http@0.3 chain (middlewares first).
    pub components: Vec<ComponentSource>,
    /// Where its requests come from.
    pub routes: Vec<Route>,
    /// Limits, environment, `wasi:config` values, instance policy.
    pub runtime: RuntimeConfig,
    /// Request body limits.
    pub body_limits: BodyLimits,
    /// This app's own admission places and queue.
    pub admission: AdmissionLimits,
    /// Where its guests may send requests, and how.
    pub outbound: berth_outbound::OutboundConfig,
}

impl Default for Config {
    /// The default front door and engine, no apps.
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Self {
            server: ServerConfig::default(),
            engine: EngineConfig::of(&runtime),
            cache_dir: None,
            apps: Vec::new(),
        }
    }
}

impl Default for AppConfig {
    /// No name, component or route yet; every limit at its default;
    /// admission places as many as the default instance pool; no egress.
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        let places = usize::try_from(runtime.max_instances).unwrap_or(usize::MAX);
        Self {
            name: String::new(),
            components: Vec::new(),
            routes: Vec::new(),
            runtime,
            body_limits: BodyLimits::default(),
            admission: AdmissionLimits::new(places),
            outbound: berth_outbound::OutboundConfig::default(),
        }
    }
}

impl Config {
    /// Every problem with this config that needs no compiling: the server
    /// section, empty or duplicate names, apps without components or
    /// routes, and routes claimed twice.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(err) = self.server.validate() {
            problems.push(err.to_string());
        }
        let mut names = HashSet::new();
        let mut claimed: HashMap<&Route, &str> = HashMap::new();
        for app in &self.apps {
            if app.name.is_empty() {
                problems.push("an app has no name".to_owned());
            } else if !names.insert(app.name.as_str()) {
                problems.push(format!("two apps are named `{}`", app.name));
            }
            if app.components.is_empty() {
                problems.push(format!("app `{}` has no component", app.name));
            }
            if app.routes.is_empty() {
                problems.push(format!("app `{}` has no route", app.name));
            }
            for route in &app.routes {
                if let Some(first) = claimed.insert(route, &app.name) {
                    problems.push(format!(
                        "route `{route}` is claimed by both `{first}` and `{}`",
                        app.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The compilation cache berth uses when none is named:
/// `$XDG_CACHE_HOME/berth/aot`, else `~/.cache/berth/aot`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("berth").join("aot"))
}

/// Why an app could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A component file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A component did not compile, link or load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Its outgoing client could not be set up (e.g. a CA file).
    #[error("outgoing client: {0}")]
    Outbound(#[source] berth_outbound::tls::TlsConfigError),
}

/// A config a platform could not take: every problem, each naming its app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The config itself is inconsistent (see [`Config::validate`]).
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Apps that failed to build, with why.
    #[error("{}", .0.iter().map(|(app, err)| format!("app `{app}`: {err}")).collect::<Vec<_>>().join("\n"))]
    Apps(Vec<(String, AppError)>),
}

/// One running app.
#[derive(Debug)]
pub struct App {
    name: Arc<str>,
    routes: Vec<Route>,
    /// The component files it was built from (watched for changes).
    files: Vec<PathBuf>,
    service: WasiHttpService,
    /// Config and component bytes: an unchanged app is kept on reload.
    fingerprint: [u8; 32],
}

impl App {
    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The component files it was built from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Its runtime (instances alive, detected worlds, …).
    pub fn runtime(&self) -> &Runtime {
        self.service.runtime()
    }

    /// The worlds of its components, the request's first stop first
    /// (`wasi:http@0.3.0 middleware -> wasi:http@0.3.0 service`).
    pub fn worlds(&self) -> String {
        let worlds: Vec<String> = self
            .runtime()
            .chain()
            .iter()
            .map(ToString::to_string)
            .collect();
        worlds.join(" -> ")
    }
}

/// The apps and routing table of one config version; replaced whole.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) routes: Routes<Arc<App>>,
    apps: Vec<Arc<App>>,
}

/// Every app of a config on shared engines, behind a routing table that
/// [`reload`](Self::reload) swaps atomically. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), berth::Error> {
/// let config = berth::platform::file::load("berth.toml".as_ref())
///     .map_err(|err| { eprintln!("{err}"); std::process::exit(1) }).unwrap();
/// let server = config.server.clone();
/// let platform = berth::Platform::build(config, "localhost:8080".parse().unwrap())?;
/// let handle = berth::ServeHandle::bind(server.addr, platform.router(), server).await?;
/// // later: platform.reload(berth::platform::file::load("berth.toml".as_ref()).unwrap())?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    options: PlatformOptions,
    engines: Engines,
    metrics: crate::metrics::Metrics,
    cache_dir: Option<PathBuf>,
    server: ServerConfig,
    local_authority: Authority,
    table: ArcSwap<Table>,
    /// One reload at a time.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("options", &self.options)
            .field("engines", &self.engines)
            .field("cache_dir", &self.cache_dir)
            .field("local_authority", &self.local_authority)
            .finish_non_exhaustive()
    }
}

/// Makes an app's outgoing client from its config (see
/// [`PlatformOptions::clients`]).
pub type ClientFactory =
    Arc<dyn Fn(&AppConfig) -> Arc<dyn berth_http::OutboundClient> + Send + Sync>;

/// What an embedder brings to a [`Platform`] besides its config.
///
/// ```
/// # use std::sync::Arc;
/// let options = berth::platform::PlatformOptions::default().clients(Arc::new(|app| {
///     // One client per app; here berth's own with the app's policy.
///     let client = berth::outbound::DefaultClient::new(app.outbound.clone())
///         .expect("valid CA files");
///     Arc::new(client) as Arc<dyn berth::http_host::OutboundClient>
/// }));
/// ```
#[derive(Clone, Default)]
pub struct PlatformOptions {
    clients: Option<ClientFactory>,
    error_pages: Option<Arc<dyn crate::response::ErrorPage>>,
}

impl std::fmt::Debug for PlatformOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformOptions")
            .field("clients", &self.clients.is_some())
            .field("error_pages", &self.error_pages.is_some())
            .finish()
    }
}

impl PlatformOptions {
    /// Gives each app the outgoing client `factory` makes (called when the
    /// app is built, and again on each reload that rebuilds it) instead of
    /// berth's [`DefaultClient`](berth_outbound::DefaultClient) configured
    /// from the app's `outbound` settings. berth still counts and traces
    /// every request it sends.
    pub fn clients(mut self, factory: ClientFactory) -> Self {
        self.clients = Some(factory);
        self
    }

    /// Renders the responses berth makes itself, for every app and for
    /// requests no route takes (see [`crate::response::ErrorPage`]).
    pub fn error_pages(mut self, pages: Arc<dyn crate::response::ErrorPage>) -> Self {
        self.error_pages = Some(pages);
        self
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Apps built anew (new, or changed config or components).
    pub built: Vec<String>,
    /// Apps kept as they were.
    pub kept: Vec<String>,
    /// Apps no longer in the config (they finish their requests).
    pub removed: Vec<String>,
}

impl Platform {
    /// Builds every app of `config` (in parallel, through the compilation
    /// cache) on fresh shared engines. `local_authority` is the listener's
    /// address (the authority of HTTP/1.0 requests without `Host`).
    pub fn build(config: Config, local_authority: Authority) -> Result<Self, BuildError> {
        Self::build_with(config, local_authority, PlatformOptions::default())
    }

    /// Like [`build`](Self::build), with an embedder's outgoing clients or
    /// error pages.
    pub fn build_with(
        mut config: Config,
        local_authority: Authority,
        options: PlatformOptions,
    ) -> Result<Self, BuildError> {
        config.validate().map_err(BuildError::Invalid)?;
        let largest = config.apps.iter().map(|a| a.runtime.memory_limit).max();
        config.engine.max_memory = config.engine.max_memory.max(largest.unwrap_or(0));
        let engines = Engines::new(config.engine.clone());
        let inner = Inner {
            options,
            engines,
            metrics: crate::metrics::Metrics::new(),
            cache_dir: config.cache_dir.clone(),
            server: config.server.clone(),
            local_authority,
            table: ArcSwap::from_pointee(Table {
                routes: Routes::empty(),
                apps: Vec::new(),
            }),
            reloading: Mutex::new(()),
        };
        let platform = Self {
            inner: Arc::new(inner),
        };
        let table = platform.build_table(&config.apps, &HashMap::new())?;
        platform.inner.table.store(Arc::new(table));
        Ok(platform)
    }

    /// Builds `config`'s apps off the request path — unchanged apps are
    /// kept, new and changed ones compiled and checked — then swaps the
    /// whole routing table at once. On any error nothing changes and the
    /// current version keeps serving. The `[server]` section is not
    /// reloaded (the listener, TLS files and pool size stay as started).
    pub fn reload(&self, config: Config) -> Result<ReloadSummary, BuildError> {
        let result = self.swap(config);
        self.inner.metrics.reloaded(result.is_ok());
        result
    }

    /// The embedder's error pages, if any.
    pub(crate) fn error_pages(&self) -> Option<&Arc<dyn crate::response::ErrorPage>> {
        self.inner.options.error_pages.as_ref()
    }

    /// The metrics of every app (served at the admin listener's
    /// `/metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    fn swap(&self, config: Config) -> Result<ReloadSummary, BuildError> {
        let _one_at_a_time = self
            .inner
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        config.validate().map_err(BuildError::Invalid)?;
        let current = self.inner.table.load_full();
        let by_name: HashMap<&str, &Arc<App>> =
            current.apps.iter().map(|a| (a.name(), a)).collect();
        let table = self.build_table(&config.apps, &by_name)?;
        let mut summary = ReloadSummary::default();
        for app in &table.apps {
            let kept = by_name
                .get(app.name())
                .is_some_and(|old| Arc::ptr_eq(old, app));
            let list = if kept {
                &mut summary.kept
            } else {
                &mut summary.built
            };
            list.push(app.name().to_owned());
        }
        let names: HashSet<&str> = table.apps.iter().map(|a| a.name()).collect();
        summary.removed = by_name
            .keys()
            .filter(|name| !names.contains(**name))
            .map(|name| (*name).to_owned())
            .collect();
        summary.removed.sort();
        self.inner.table.store(Arc::new(table));
        Ok(summary)
    }

    /// The routing service for a front-end: cheap to clone; every request
    /// reads the table current when it arrives.
    pub fn router(&self) -> Router {
        Router::new(self.clone())
    }

    /// The apps of the current version.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.inner.table.load().apps.clone()
    }

    /// The routing table of the current version, in lookup order: each
    /// route and the app it leads to.
    pub fn routing_table(&self) -> Vec<(Route, String)> {
        let table = self.inner.table.load();
        table
            .routes
            .entries()
            .into_iter()
            .map(|(route, app)| (route.clone(), app.name().to_owned()))
            .collect()
    }

    pub(crate) fn table(&self) -> Arc<Table> {
        self.inner.table.load_full()
    }

    /// The front-door settings the platform was built with.
    pub fn server_config(&self) -> &ServerConfig {
        &self.inner.server
    }

    /// Builds a table for `apps`, reusing the apps of `current` whose
    /// fingerprint is unchanged; compiles the others in parallel.
    fn build_table(
        &self,
        apps: &[AppConfig],
        current: &HashMap<&str, &Arc<App>>,
    ) -> Result<Table, BuildError> {
        let mut failures = Vec::new();
        let mut prepared = Vec::new();
        for app in apps {
            match read_components(app) {
                Ok(bytes) => {
                    let fingerprint = fingerprint(app, &bytes);
                    match current.get(app.name.as_str()) {
                        Some(old) if old.fingerprint == fingerprint => {
                            prepared.push(Prepared::Kept(Arc::clone(old)));
                        }
                        _ => prepared.push(Prepared::Build(app, bytes, fingerprint)),
                    }
                }
                Err(err) => failures.push((app.name.clone(), err)),
            }
        }
        if !failures.is_empty() {
            return Err(BuildError::Apps(failures));
        }
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Built>>> =
            Mutex::new(prepared.iter().map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers.min(prepared.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = prepared.get(i) else { break };
                        let built = match item {
                            Prepared::Kept(app) => Ok(Arc::clone(app)),
                            Prepared::Build(config, bytes, fingerprint) => {
                                self.build_app(config, bytes, *fingerprint).map(Arc::new)
                            }
                        };
                        let mut results = results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        results[i] = Some(built);
                    }
                });
            }
        });
        let results = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut built = Vec::new();
        for (result, config) in results.into_iter().zip(apps) {
            match result {
                Some(Ok(app)) => built.push(app),
                Some(Err(err)) => failures.push((config.name.clone(), err)),
                None => unreachable!("every app is built or failed"),
            }
        }
        if !failures.is_empty() {
            return Err(BuildError::Apps(failures));
        }
        let routes = Routes::build(built.iter().flat_map(|app| {
            app.routes
                .iter()
                .map(move |route| (route.clone(), app.name(), Arc::clone(app)))
        }))
        .map_err(|clashes| {
            BuildError::Invalid(clashes.iter().map(ToString::to_string).collect())
        })?;
        Ok(Table {
            routes,
            apps: built,
        })
    }

    fn build_app(
        &self,
        config: &AppConfig,
        bytes: &[(Vec<u8>, String)],
        fingerprint: [u8; 32],
    ) -> Result<App, AppError> {
        let mut runtime_config = config.runtime.clone();
        runtime_config.cache_dir.clone_from(&self.inner.cache_dir);
        runtime_config.max_instances = self.inner.engines.config().max_instances;
        let name: Arc<str> = Arc::from(config.name.as_str());
        let client: Arc<dyn berth_http::OutboundClient> = match &self.inner.options.clients {
            Some(factory) => factory(config),
            None => {
                let client = berth_outbound::DefaultClient::new(config.outbound.clone())
                    .map_err(AppError::Outbound)?;
                self.inner
                    .metrics
                    .track_pool(name.clone(), client.pool_gauge());
                Arc::new(client)
            }
        };
        let sources: Vec<Source<'_>> = bytes
            .iter()
            .map(|(bytes, what)| Source { bytes, what })
            .collect();
        let runtime = Runtime::builder(runtime_config)
            .engines(self.inner.engines.clone())
            .outbound(client)
            .build_chain(&sources)?;
        let mut service = WasiHttpService::new(runtime, self.inner.local_authority.clone())
            .with_body_limits(config.body_limits)
            .with_admission(config.admission)
            .with_head_limits(self.inner.server.head_limits())
            .with_app_name(name.clone())
            .with_metrics(self.inner.metrics.clone());
        if self.inner.server.tls.is_some() {
            service = service.with_scheme(http::uri::Scheme::HTTPS);
        }
        if let Some(pages) = &self.inner.options.error_pages {
            service = service.with_error_pages(pages.clone());
        }
        tracing::info!(app = %name, routes = ?config.routes.iter().map(ToString::to_string).collect::<Vec<_>>(), "app ready");
        Ok(App {
            name,
            routes: config.routes.clone(),
            files: config
                .components
                .iter()
                .filter_map(|c| c.path().map(PathBuf::from))
                .collect(),
            service,
            fingerprint,
        })
    }
}

/// An app built, or why not.
type Built = Result<Arc<App>, AppError>;

/// An app of the new config before the build: kept as it runs, or to
/// build from these bytes.
enum Prepared<'a> {
    Kept(Arc<App>),
    Build(&'a AppConfig, Vec<(Vec<u8>, String)>, [u8; 32]),
}

/// Reads an app's components; a file over the app's component size limit
/// is refused before it is read.
fn read_components(app: &AppConfig) -> Result<Vec<(Vec<u8>, String)>, AppError> {
    let max = app.runtime.max_component_bytes;
    app.components
        .iter()
        .map(|source| match source {
            ComponentSource::File(path) => {
                let read_error = |source| AppError::Read {
                    path: path.clone(),
                    source,
                };
                let size = std::fs::metadata(path).map_err(read_error)?.len();
                if size > max as u64 {
                    return Err(AppError::Load(LoadError::TooLarge {
                        what: path.display().to_string(),
                        size,
                        max,
                    }));
                }
                std::fs::read(path)
                    .map(|bytes| (bytes, path.display().to_string()))
                    .map_err(read_error)
            }
            ComponentSource::Bytes { name, bytes } => Ok((bytes.to_vec(), name.clone())),
        })
        .collect()
}

/// A digest of everything that makes an app what it is: its config
/// (including `wasi:config` values) and its components' bytes.
fn fingerprint(app: &AppConfig, components: &[(Vec<u8>, String)]) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(format!("{app:?}").as_bytes());
    for (key, value) in app.runtime.config_vars.all() {
        digest.update((key.len() as u64).to_le_bytes());
        digest.update(key.as_bytes());
        digest.update((value.len() as u64).to_le_bytes());
        digest.update(value.as_bytes());
    }
    for (bytes, _) in components {
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    }
    digest.finalize().into()
}
