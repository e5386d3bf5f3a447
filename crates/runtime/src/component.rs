//! Loading a component: format checks, compilation, world detection and
//! pre-instantiation against the host's linker.

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use berth_http::p2::bindings::ProxyPre;

use crate::error::LoadError;
use crate::store::StoreState;

/// The `wasi:http` world a component implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum World {
    /// `wasi:http/proxy@0.2.x`; holds the exact export name found.
    Proxy02(String),
}

/// A compiled, linked component ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(crate) pre: ProxyPre<StoreState>,
    world: World,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("world", &self.world)
            .finish()
    }
}

impl LoadedComponent {
    /// The world that was detected.
    pub fn world(&self) -> &World {
        &self.world
    }
}

const WASM_MAGIC: &[u8] = b"\0asm";
const CORE_MODULE_VERSION: &[u8] = &[0x01, 0x00, 0x00, 0x00];

/// Builds the linker every component is checked against: wasmtime-wasi's p2
/// interfaces (io, clocks, random, cli, filesystem, sockets; all without
/// ambient authority) and our `wasi:http@0.2` host.
pub fn build_linker(engine: &Engine) -> Result<Linker<StoreState>, LoadError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Engine)?;
    berth_http::p2::add_to_linker(&mut linker).map_err(LoadError::Engine)?;
    Ok(linker)
}

/// Compiles `bytes` (described as `what` in errors) and prepares it.
pub fn load(
    engine: &Engine,
    linker: &Linker<StoreState>,
    bytes: &[u8],
    what: &str,
    cache_dir: Option<&std::path::Path>,
) -> Result<LoadedComponent, LoadError> {
    let what = what.to_owned();
    if !bytes.starts_with(WASM_MAGIC) {
        return Err(LoadError::NotWasm { what });
    }
    if bytes.get(4..8) == Some(CORE_MODULE_VERSION) {
        return Err(LoadError::CoreModule { what });
    }
    let (component, cached) =
        crate::cache::compile(engine, bytes, cache_dir).map_err(|source| LoadError::Compile {
            what: what.clone(),
            source,
        })?;
    tracing::info!(component = %what, cache = ?cached, "component ready");
    let world = detect_world(engine, &component, &what)?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|source| LoadError::Link {
            what: what.clone(),
            source,
        })?;
    let pre = ProxyPre::new(instance_pre).map_err(|source| LoadError::Link { what, source })?;
    Ok(LoadedComponent { pre, world })
}

fn detect_world(engine: &Engine, component: &Component, what: &str) -> Result<World, LoadError> {
    let mut found = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        if name.starts_with("wasi:http/incoming-handler@0.2.")
            && matches!(item.ty, ComponentItem::ComponentInstance(_))
        {
            return Ok(World::Proxy02(name.to_owned()));
        }
        found.push(name.to_owned());
    }
    Err(LoadError::NoHandler {
        what: what.to_owned(),
        found: found.join(", "),
    })
}
