//! The ahead-of-time compilation cache.
//!
//! Compiled components are stored as `<key>.cwasm` under the cache
//! directory, where the key hashes the component's bytes, wasmtime's
//! precompile-compatibility settings and berth's version. Each file starts
//! with a magic line and the SHA-256 of the compiled payload.
//!
//! Rules (hardening D3–D6):
//! * files are written to a temporary name, fsynced and renamed, so a crash
//!   never leaves a partial entry under a real name;
//! * entries are read into memory and checked before use — never mapped, so
//!   a file changed on disk cannot change code already loaded;
//! * a corrupt, truncated or incompatible entry is recompiled and replaced,
//!   never trusted;
//! * when the directory cannot be created or written, berth compiles in
//!   memory and warns once.
//!
//! Loading precompiled code executes it, so the cache directory must be as
//! trusted as the berth binary: berth creates it with mode 0700.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"berth-aot-v1\n\0\0\0";

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory configured: compiled in memory.
    Disabled,
    /// Loaded from a valid cache entry.
    Hit,
    /// Compiled and stored (there was no entry).
    Stored,
    /// An entry existed but was corrupt or incompatible: recompiled and
    /// replaced.
    Replaced,
    /// Compiled in memory because the cache could not be written.
    Unwritable,
}

static WARNED: AtomicBool = AtomicBool::new(false);

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

/// Cache look-ups in this process so far, as `(hits, misses)`: a miss is a
/// compilation with a cache directory configured (no entry, a bad one, or
/// an unwritable cache). Compilations without a cache count as neither.
pub fn lookups() -> (u64, u64) {
    (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
}

fn warn_once(dir: &Path, err: &dyn std::fmt::Display) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            cache = %dir.display(),
            "compilation cache unusable ({err}); compiling in memory"
        );
    }
}

/// The cache key of `bytes` for `engine`; `variant` names a transformation
/// applied before compiling (see [`compile_prepared`]), so its output is
/// cached apart from the component as given.
pub fn key(engine: &Engine, bytes: &[u8], variant: Option<&str>) -> String {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hasher.update(settings.finish().to_le_bytes());
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Some(variant) = variant {
        hasher.update(b"\0variant\0");
        hasher.update(variant.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Path of the entry for `key` in `dir`.
pub fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.cwasm"))
}

/// Compiles `bytes`, going through the cache in `dir` when there is one.
pub fn compile(
    engine: &Engine,
    bytes: &[u8],
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    compile_prepared(engine, bytes, dir, None)
}

/// A transformation of a component before it is compiled, such as
/// pre-initialisation: `name` goes into the cache key, and `run` is only
/// called on a cache miss (its output is what gets compiled and stored).
pub struct Prepare<'a> {
    /// Names the transformation (and its version) in the cache key.
    pub name: &'a str,
    /// Turns the component's bytes into the bytes to compile.
    pub run: &'a dyn Fn(&[u8]) -> wasmtime::Result<Vec<u8>>,
}

impl std::fmt::Debug for Prepare<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepare").field("name", &self.name).finish()
    }
}

/// Like [`compile`], with `prepare` applied to `bytes` before compiling.
/// The key is that of the original bytes and the transformation's name, so
/// a hit skips the transformation too.
pub fn compile_prepared(
    engine: &Engine,
    bytes: &[u8],
    dir: Option<&Path>,
    prepare: Option<&Prepare<'_>>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let build = || match prepare {
        Some(prepare) => Component::new(engine, (prepare.run)(bytes)?),
        None => Component::new(engine, bytes),
    };
    let Some(dir) = dir else {
        return Ok((build()?, CacheOutcome::Disabled));
    };
    let path = entry_path(dir, &key(engine, bytes, prepare.map(|p| p.name)));
    let existed = match std::fs::read(&path) {
        Ok(file) => match load(engine, &file) {
            Some(component) => {
                HITS.fetch_add(1, Ordering::Relaxed);
                return Ok((component, CacheOutcome::Hit));
            }
            None => {
                tracing::warn!(entry = %path.display(), "cache entry corrupt or incompatible; recompiling");
                true
            }
        },
        Err(_) => false,
    };
    MISSES.fetch_add(1, Ordering::Relaxed);
    let component = build()?;
    let outcome = match store(dir, &path, &component) {
        Ok(()) if existed => CacheOutcome::Replaced,
        Ok(()) => CacheOutcome::Stored,
        Err(err) => {
            warn_once(dir, &err);
            CacheOutcome::Unwritable
        }
    };
    Ok((component, outcome))
}

/// Checks an entry and deserializes it; `None` when it cannot be trusted or
/// used.
fn load(engine: &Engine, file: &[u8]) -> Option<Component> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let (digest, payload) = rest.split_at_checked(32)?;
    if Sha256::digest(payload).as_slice() != digest {
        return None;
    }
    // SAFETY: `payload` was produced by `Component::serialize` of this
    // berth (its SHA-256 matches the one written with it, in a directory
    // only berth writes), it lives in our own memory rather than a mapped
    // file, and wasmtime itself rejects payloads from other versions or
    // settings with an error.
    #[allow(unsafe_code, reason = "deserializing berth's own checked cache entry")]
    let component = unsafe { Component::deserialize(engine, payload) };
    component.ok()
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let payload = component.serialize().map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// The smallest valid component: just the header.
    fn wasm() -> Vec<u8> {
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn stores_then_hits() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("hit"));
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Stored
        );
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Hit
        );
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn corrupt_or_truncated_entries_are_recompiled_not_trusted() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("corrupt"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        let path = entry_path(&dir, &key(&engine, &bytes, None));
        let mut file = std::fs::read(&path).unwrap();
        let last = file.len() - 1;
        file[last] ^= 0xff;
        std::fs::write(&path, &file).unwrap();
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Replaced
        );
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Hit
        );
        std::fs::write(&path, &file[..40]).unwrap();
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Replaced
        );
    }

    #[test]
    fn unwritable_cache_compiles_in_memory() {
        let (engine, bytes) = (engine(), wasm());
        // A directory below a regular file can never be created (even by root).
        let file = temp_dir("file");
        std::fs::write(&file, b"not a directory").unwrap();
        let dir = file.join("cache");
        assert_eq!(
            compile(&engine, &bytes, Some(&dir)).unwrap().1,
            CacheOutcome::Unwritable
        );
    }

    #[test]
    fn keys_depend_on_bytes_and_variant() {
        let engine = engine();
        assert_ne!(key(&engine, b"a", None), key(&engine, b"b", None));
        assert_ne!(key(&engine, b"a", None), key(&engine, b"a", Some("x")));
        assert_ne!(key(&engine, b"a", Some("x")), key(&engine, b"a", Some("y")));
        assert_eq!(key(&engine, b"a", None).len(), 64);
    }

    #[test]
    fn a_prepared_variant_is_cached_apart_and_prepared_only_on_a_miss() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("prepared"));
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let run = |input: &[u8]| {
            runs.fetch_add(1, Ordering::Relaxed);
            Ok(input.to_vec())
        };
        let prepare = Prepare {
            name: "test",
            run: &run,
        };
        let outcome = |prepare| {
            compile_prepared(&engine, &bytes, Some(&dir), prepare)
                .unwrap()
                .1
        };
        assert_eq!(outcome(Some(&prepare)), CacheOutcome::Stored);
        assert_eq!(outcome(Some(&prepare)), CacheOutcome::Hit);
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        // The plain compile has an entry of its own.
        assert_eq!(outcome(None), CacheOutcome::Stored);
        // A failing preparation is an error, not a cached entry.
        let failing = |_: &[u8]| Err(wasmtime::format_err!("no"));
        let broken = Prepare {
            name: "broken",
            run: &failing,
        };
        assert!(compile_prepared(&engine, &bytes, Some(&dir), Some(&broken)).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }
}
