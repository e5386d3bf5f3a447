//! Loading components: format checks, compilation, world detection,
//! middleware chains and pre-instantiation against the host's linker.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Accessor, Component, Linker, Resource, TypedFunc};
use wasmtime::{Engine, format_err};

use berth_http::p2::bindings::ProxyPre;
use berth_http::p3::bindings::ServicePre;
use berth_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;
use berth_http::p3::{Request, Response};

use crate::cache::Prepare;
use crate::config::RuntimeConfig;
use crate::engine::Concurrency;
use crate::error::LoadError;
use crate::preinit::PreInitError;
use crate::store::StoreState;

/// The interface a wasi:http@0.3 handler exports (and a middleware imports).
pub const P3_HANDLER: &str = berth_http::p3::HANDLER_INTERFACE;

/// Any 0.3.x handler (guests built against a later 0.3 patch release link
/// by semver against the 0.3.0 host).
fn is_p3_handler(name: &str) -> bool {
    name.starts_with("wasi:http/handler@0.3.")
}

/// The `wasi:http` world a component implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum World {
    /// `wasi:http/proxy@0.2.x`; holds the exact export name found.
    Proxy02(String),
    /// `wasi:http/service@0.3.0`: exports `handler`.
    Service03,
    /// `wasi:http/middleware@0.3.0`: exports `handler` and imports the next
    /// one (the next component's, or, for the last component of an app,
    /// berth's outgoing client).
    Middleware03,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            World::Proxy02(export) => write!(f, "wasi:http@0.2 proxy ({export})"),
            World::Service03 => f.write_str("wasi:http@0.3.0 service"),
            World::Middleware03 => f.write_str("wasi:http@0.3.0 middleware"),
        }
    }
}

/// The typed `handle` export of a 0.3 component.
pub(crate) type HandleFunc =
    TypedFunc<(Resource<Request>,), (Result<Resource<Response>, P3ErrorCode>,)>;

/// A started call of a [`HandleFunc`].
pub(crate) type HandleCall = wasmtime::component::TypedFuncCallConcurrent<
    StoreState,
    (Resource<Request>,),
    (Result<Resource<Response>, P3ErrorCode>,),
>;

/// What instantiating a loaded app takes.
#[derive(Clone)]
pub(crate) enum Pre {
    /// One 0.2 component.
    P2(ProxyPre<StoreState>),
    /// A 0.3 chain, the request's first stop first: zero or more
    /// middlewares, then a service. Each middleware's imported `handler` is
    /// linked to the next stage's export.
    P3(Vec<ServicePre<StoreState>>),
}

/// A compiled, linked app (one component, or a middleware chain) ready to
/// instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(crate) pre: Pre,
    world: World,
    chain: Vec<World>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("world", &self.world)
            .field("chain", &self.chain)
            .finish()
    }
}

impl LoadedComponent {
    /// The world of the component that answers requests (the chain's last).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The worlds of every component, the request's first stop first.
    pub fn chain(&self) -> &[World] {
        &self.chain
    }
}

const WASM_MAGIC: &[u8] = b"\0asm";
const CORE_MODULE_VERSION: &[u8] = &[0x01, 0x00, 0x00, 0x00];

/// Builds the linker every component is checked against: wasmtime-wasi's p2
/// interfaces (io, clocks, random, cli, filesystem, sockets; all without
/// ambient authority), our `wasi:http` 0.2 host and `wasi:config/store`,
/// plus, when the engine has concurrency, the p3 versions of both. The versions do not collide:
/// `@0.2.x` and `@0.3.0` are different interfaces.
pub fn build_linker(
    engine: &Engine,
    concurrency: Concurrency,
) -> Result<Linker<StoreState>, LoadError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Engine)?;
    berth_http::p2::add_to_linker(&mut linker).map_err(LoadError::Engine)?;
    crate::wasi_config::add_to_linker(&mut linker).map_err(LoadError::Engine)?;
    if concurrency == Concurrency::Enabled {
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(LoadError::Engine)?;
        berth_http::p3::add_to_linker(&mut linker).map_err(LoadError::Engine)?;
    }
    Ok(linker)
}

/// Which engine an app needs, read from the components' export sections
/// before anything is compiled: concurrency when any component exports a
/// wasi:http@0.3 handler (or cannot be read, so that compiling reports the
/// real problem).
pub fn concurrency_for(sources: &[Source<'_>]) -> Concurrency {
    let exports_p3_handler = |bytes: &[u8]| {
        top_level_exports(bytes).is_none_or(|names| names.iter().any(|n| is_p3_handler(n)))
    };
    if sources.iter().any(|s| exports_p3_handler(s.bytes)) {
        Concurrency::Enabled
    } else {
        Concurrency::Disabled
    }
}

/// The names a component exports at its top level, read from its export
/// sections without compiling it; `None` when the bytes do not parse.
pub(crate) fn top_level_exports(bytes: &[u8]) -> Option<Vec<String>> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    names.push(export.ok()?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Some(names)
}

/// One component to load: its bytes and how to name it in errors (a path,
/// or "the built-in demo").
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The component's bytes.
    pub bytes: &'a [u8],
    /// Its name in messages.
    pub what: &'a str,
}

/// Compiles and prepares an app: one component, or a chain of
/// `wasi:http/middleware@0.3.0` components in front of a
/// `wasi:http/service@0.3.0` one (the request's first stop first).
///
/// With [`RuntimeConfig::pre_init`], each component is pre-initialised
/// (see [`crate::preinit`]) before it is compiled; the engine's epoch must
/// then be ticking.
pub fn load(
    engine: &Engine,
    linker: &Linker<StoreState>,
    sources: &[Source<'_>],
    config: &RuntimeConfig,
) -> Result<LoadedComponent, LoadError> {
    let mut compiled = Vec::with_capacity(sources.len());
    for source in sources {
        let started = std::time::Instant::now();
        let (component, _) = compile(engine, linker, config, source)?;
        tracing::debug!(component = %source.what, elapsed = ?started.elapsed(), "compiled or loaded");
        let world = detect_world(engine, &component, source.what)?;
        tracing::info!(component = %source.what, world = %world, "component loaded");
        compiled.push((component, world, source.what));
    }
    let Some(((last, last_world, last_what), middlewares)) = compiled.split_last() else {
        return Err(LoadError::Chain {
            reason: "no component given".into(),
        });
    };
    let chain: Vec<World> = compiled.iter().map(|(_, w, _)| w.clone()).collect();
    if let World::Proxy02(_) = last_world {
        if let Some((_, _, first)) = middlewares.first() {
            return Err(LoadError::Chain {
                reason: format!(
                    "middleware chains are wasi:http@0.3.0 only, but {last_what} is a 0.2 proxy \
                     component (in front of it: {first})"
                ),
            });
        }
        let instance_pre = linker
            .instantiate_pre(last)
            .map_err(|source| link_error(last_what, source))?;
        let pre = ProxyPre::new(instance_pre).map_err(|source| link_error(last_what, source))?;
        return Ok(LoadedComponent {
            pre: Pre::P2(pre),
            world: last_world.clone(),
            chain,
        });
    }
    for (_, world, what) in middlewares {
        if *world != World::Middleware03 {
            return Err(LoadError::Chain {
                reason: format!(
                    "{what} is a {world}; every component but the last must be a \
                     wasi:http/middleware@0.3.0 component (import and export `{P3_HANDLER}`)"
                ),
            });
        }
    }
    let mut stages = Vec::with_capacity(compiled.len());
    for (index, (component, _, what)) in compiled.iter().enumerate() {
        let mut stage_linker = linker.clone();
        if index + 1 < compiled.len() {
            link_next(&mut stage_linker, index + 1).map_err(|source| link_error(what, source))?;
        } else if *last_world == World::Middleware03 {
            // Nothing after it: what it forwards goes out through the client.
            berth_http::p3::add_handler_import_to_linker(&mut stage_linker)
                .map_err(|source| link_error(what, source))?;
            tracing::info!(component = %what, "handler import -> outgoing client");
        }
        let instance_pre = stage_linker
            .instantiate_pre(component)
            .map_err(|source| link_error(what, source))?;
        stages.push(ServicePre::new(instance_pre).map_err(|source| link_error(what, source))?);
    }
    Ok(LoadedComponent {
        pre: Pre::P3(stages),
        world: last_world.clone(),
        chain,
    })
}

/// Defines a middleware's imported `handler.handle` as a call into the
/// export of chain stage `next` in the same store: no network hop, and the
/// request's body streams pass through as they are.
fn link_next(linker: &mut Linker<StoreState>, next: usize) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(P3_HANDLER)?.func_wrap_concurrent(
        "handle",
        move |accessor: &Accessor<StoreState>, (request,): (Resource<Request>,)| {
            Box::pin(async move {
                let handle = accessor
                    .with(|mut access| access.get().chain_handler(next))
                    .ok_or_else(|| {
                        format_err!("middleware chain stage {next} is not instantiated")
                    })?;
                handle.call_concurrent(accessor, (request,)).await
            })
        },
    )
}

fn link_error(what: &str, source: wasmtime::Error) -> LoadError {
    LoadError::Link {
        what: what.to_owned(),
        source,
    }
}

/// Checks the format of `source` and compiles it through the cache,
/// pre-initialising it first when `config` asks for it.
pub fn compile(
    engine: &Engine,
    linker: &Linker<StoreState>,
    config: &RuntimeConfig,
    source: &Source<'_>,
) -> Result<(Component, crate::cache::CacheOutcome), LoadError> {
    let what = source.what.to_owned();
    if source.bytes.len() > config.max_component_bytes {
        return Err(LoadError::TooLarge {
            what,
            size: source.bytes.len() as u64,
            max: config.max_component_bytes,
        });
    }
    if !source.bytes.starts_with(WASM_MAGIC) {
        return Err(LoadError::NotWasm { what });
    }
    if source.bytes.get(4..8) == Some(CORE_MODULE_VERSION) {
        return Err(LoadError::CoreModule { what });
    }
    // On a thread of its own, so a compile that takes too long fails the
    // load instead of hanging it (Cranelift cannot be interrupted: past
    // the limit the thread finishes in the background, its result dropped).
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let job = {
        let (engine, linker, config) = (engine.clone(), linker.clone(), config.clone());
        let (bytes, what) = (source.bytes.to_vec(), what.clone());
        move || {
            let _ = tx.send(compile_now(&engine, &linker, &config, &bytes, &what));
        }
    };
    std::thread::Builder::new()
        .name("berth-compile".into())
        .spawn(job)
        .map_err(|err| LoadError::Compile {
            what: what.clone(),
            source: wasmtime::Error::new(err),
        })?;
    let limit = config.max_compile_time;
    let (component, cached) = match rx.recv_timeout(limit) {
        Ok(result) => result?,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            tracing::error!(component = %what, ?limit, "compile time limit reached; load refused");
            return Err(LoadError::CompileTimeout { what, limit });
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            return Err(LoadError::Compile {
                what,
                source: wasmtime::format_err!("the compiler thread ended without a result"),
            });
        }
    };
    tracing::info!(component = %what, cache = ?cached, pre_init = config.pre_init, "component ready");
    Ok((component, cached))
}

/// Compiles `bytes` through the cache, pre-initialising first when
/// `config` asks for it (the body of [`compile`], on its thread).
fn compile_now(
    engine: &Engine,
    linker: &Linker<StoreState>,
    config: &RuntimeConfig,
    bytes: &[u8],
    what: &str,
) -> Result<(Component, crate::cache::CacheOutcome), LoadError> {
    let run = |input: &[u8]| {
        let started = std::time::Instant::now();
        let snapshot = crate::preinit::pre_initialize(engine, linker, config, input)
            .map_err(wasmtime::Error::new)?;
        tracing::info!(component = %what, elapsed = ?started.elapsed(), "pre-initialised");
        Ok(snapshot)
    };
    let prepare = config.pre_init.then_some(Prepare {
        name: crate::preinit::CACHE_VARIANT,
        run: &run,
    });
    crate::cache::compile_prepared(engine, bytes, config.cache_dir.as_deref(), prepare.as_ref())
        .map_err(|source| match source.downcast::<PreInitError>() {
            Ok(source) => LoadError::PreInit {
                what: what.to_owned(),
                source,
            },
            Err(source) => LoadError::Compile {
                what: what.to_owned(),
                source,
            },
        })
}

/// Finds the world: a 0.3 `handler` export first (a middleware if it also
/// imports one), then a 0.2 `incoming-handler`.
fn detect_world(engine: &Engine, component: &Component, what: &str) -> Result<World, LoadError> {
    let ty = component.component_type();
    let mut found = Vec::new();
    let mut p2 = None;
    let mut p3 = false;
    for (name, item) in ty.exports(engine) {
        let instance = matches!(item.ty, ComponentItem::ComponentInstance(_));
        if instance && is_p3_handler(name) {
            p3 = true;
        } else if instance && name.starts_with("wasi:http/incoming-handler@0.2.") {
            p2 = Some(name.to_owned());
        }
        found.push(name.to_owned());
    }
    if p3 {
        let imports_handler = ty.imports(engine).any(|(name, _)| is_p3_handler(name));
        return Ok(if imports_handler {
            World::Middleware03
        } else {
            World::Service03
        });
    }
    if let Some(export) = p2 {
        return Ok(World::Proxy02(export));
    }
    Err(LoadError::NoHandler {
        what: what.to_owned(),
        found: found.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::is_p3_handler;

    #[test]
    fn the_engine_is_chosen_from_the_export_section() {
        use super::{Concurrency, Source, concurrency_for};
        let prebuilt = |name: &str| {
            let path = format!(
                "{}/../../guests/prebuilt/{name}.wasm",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read(path).unwrap()
        };
        let (p2, p3, mw) = (
            prebuilt("suite"),
            prebuilt("p3-hello"),
            prebuilt("p3-mw-upper"),
        );
        fn of(bytes: &[u8]) -> Source<'_> {
            Source { bytes, what: "t" }
        }
        assert_eq!(concurrency_for(&[of(&p2)]), Concurrency::Disabled);
        assert_eq!(concurrency_for(&[of(&p3)]), Concurrency::Enabled);
        assert_eq!(concurrency_for(&[of(&mw), of(&p3)]), Concurrency::Enabled);
        // Unreadable bytes: let the compiler report it with everything on.
        assert_eq!(
            concurrency_for(&[of(b"\0asm\x0d\0\x01\0junk")]),
            Concurrency::Enabled
        );
    }

    #[test]
    fn any_0_3_patch_release_is_a_p3_handler() {
        assert!(is_p3_handler("wasi:http/handler@0.3.0"));
        assert!(is_p3_handler("wasi:http/handler@0.3.2"));
        assert!(!is_p3_handler("wasi:http/handler@0.4.0"));
        assert!(!is_p3_handler("wasi:http/incoming-handler@0.2.0"));
    }
}
