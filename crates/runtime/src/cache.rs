//! The ahead-of-time compilation cache.
//!
//! Compiled components are stored as `<key>.cwasm` under the cache
//! directory, where the key hashes the component's bytes, wasmtime's
//! precompile-compatibility settings and berth's version. Each file starts
//! with a magic line and an HMAC-SHA-256 of the compiled payload, keyed by
//! a secret that lives in the directory's `mac.key` (32 random bytes, mode
//! 0600, created on first use).
//!
//! Rules (hardening D3–D6):
//! * files are written to a temporary name, fsynced and renamed, so a crash
//!   never leaves a partial entry under a real name;
//! * entries are read into memory and checked before use — never mapped, so
//!   a file changed on disk cannot change code already loaded;
//! * a corrupt, truncated, incompatible or unauthenticated entry is
//!   recompiled and replaced, never trusted;
//! * when the directory cannot be created or written, berth compiles in
//!   memory and warns once.
//!
//! Loading precompiled code executes it, so the cache must be as trusted as
//! the berth binary ([`check_trust`]): berth creates the directory with
//! mode 0700 and refuses (compiles in memory, with a warning) a directory
//! or key owned by another user or writable by group or others; it refuses
//! entries that are symbolic links, not regular files, owned by another
//! user or group/other-writable, or whose MAC does not verify. Someone who
//! can write the directory but cannot read the key cannot forge an entry.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"berth-aot-v2\n\0\0\0";

/// The name of the MAC key file inside the cache directory.
pub const KEY_FILE: &str = "mac.key";

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// No cache directory configured: compiled in memory.
    Disabled,
    /// Loaded from a valid cache entry.
    Hit,
    /// Compiled and stored (there was no entry).
    Stored,
    /// An entry existed but was corrupt, incompatible or not trusted:
    /// recompiled and replaced.
    Replaced,
    /// Compiled in memory because the cache could not be written.
    Unwritable,
    /// Compiled in memory because the cache directory or its key is not
    /// private to this user (see [`check_trust`]).
    Untrusted,
}

/// Why a cache directory, its key or an entry is not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The path is not a directory (or not a regular file, for the key
    /// and entries).
    #[error("{path} is not a {expected}")]
    WrongType {
        /// The path.
        path: PathBuf,
        /// "directory" or "regular file".
        expected: &'static str,
    },
    /// The path is a symbolic link (entries and the key are never followed).
    #[error("{path} is a symbolic link")]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Another user owns it.
    #[error("{path} is owned by uid {owner}, not by this process's uid {uid}")]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        uid: u32,
    },
    /// Group or others may write it (or, for the key, read it).
    #[error("{path} has mode {mode:04o}: {what}")]
    Mode {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What is wrong with them.
        what: &'static str,
    },
    /// The key file does not hold a key.
    #[error("{path} is {len} bytes long, not a {KEY_LEN}-byte key")]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The path could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

static WARNED: AtomicBool = AtomicBool::new(false);

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

/// Cache look-ups in this process so far, as `(hits, misses)`: a miss is a
/// compilation with a cache directory configured (no entry, a bad one, or
/// an unusable cache). Compilations without a cache count as neither.
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
    let mac_key = match open_cache(dir) {
        Ok(key) => key,
        Err(Opened::Unwritable(err)) => {
            MISSES.fetch_add(1, Ordering::Relaxed);
            warn_once(dir, &err);
            return Ok((build()?, CacheOutcome::Unwritable));
        }
        Err(Opened::Untrusted(err)) => {
            MISSES.fetch_add(1, Ordering::Relaxed);
            warn_once(dir, &format_args!("not trusted: {err}"));
            return Ok((build()?, CacheOutcome::Untrusted));
        }
    };
    let path = entry_path(dir, &key(engine, bytes, prepare.map(|p| p.name)));
    let existed = match read_entry(&path) {
        Ok(Some(file)) => match load(engine, &mac_key, &file) {
            Some(component) => {
                HITS.fetch_add(1, Ordering::Relaxed);
                return Ok((component, CacheOutcome::Hit));
            }
            None => {
                tracing::warn!(entry = %path.display(), "cache entry corrupt, incompatible or not authentic; recompiling");
                true
            }
        },
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(entry = %path.display(), "cache entry refused ({err}); recompiling");
            true
        }
    };
    MISSES.fetch_add(1, Ordering::Relaxed);
    let component = build()?;
    let outcome = match store(dir, &mac_key, &path, &component) {
        Ok(()) if existed => CacheOutcome::Replaced,
        Ok(()) => CacheOutcome::Stored,
        Err(err) => {
            warn_once(dir, &err);
            CacheOutcome::Unwritable
        }
    };
    Ok((component, outcome))
}

/// Why the cache cannot be used at all.
enum Opened {
    Unwritable(std::io::Error),
    Untrusted(TrustError),
}

/// Creates the directory if needed, checks it, and reads (or creates) its
/// MAC key.
fn open_cache(dir: &Path) -> Result<[u8; KEY_LEN], Opened> {
    create_private_dir(dir).map_err(Opened::Unwritable)?;
    check_dir(dir).map_err(Opened::Untrusted)?;
    match read_key(dir) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => match create_key(dir) {
            Ok(key) => Ok(key),
            // Another process created it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_key(dir)
                .map_err(Opened::Untrusted)?
                .ok_or(Opened::Unwritable(err)),
            Err(err) => Err(Opened::Unwritable(err)),
        },
        Err(err) => Err(Opened::Untrusted(err)),
    }
}

/// Checks that `dir` (when it exists) and its key (when it exists) may be
/// trusted with code this process will run: both owned by this user, the
/// directory writable by no one else, the key readable by no one else and
/// not a symbolic link. `berth compile` reports this reason when it
/// refuses a cache.
pub fn check_trust(dir: &Path) -> Result<(), TrustError> {
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => check_dir(dir)?,
    }
    read_key(dir).map(|_| ())
}

fn check_dir(dir: &Path) -> Result<(), TrustError> {
    let meta = std::fs::metadata(dir).map_err(|source| TrustError::Io {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(TrustError::WrongType {
            path: dir.to_owned(),
            expected: "directory",
        });
    }
    private::check_owner_and_mode(dir, &meta, 0o022, "writable by group or others")
}

/// Reads the key; `None` when there is none yet.
fn read_key(dir: &Path) -> Result<Option<[u8; KEY_LEN]>, TrustError> {
    let path = dir.join(KEY_FILE);
    let Some((mut file, meta)) = open_checked(&path, 0o077, "readable or writable by others")?
    else {
        return Ok(None);
    };
    if meta.len() != KEY_LEN as u64 {
        return Err(TrustError::KeyLength {
            path,
            len: meta.len(),
        });
    }
    let mut key = [0; KEY_LEN];
    file.read_exact(&mut key)
        .map_err(|source| TrustError::Io { path, source })?;
    Ok(Some(key))
}

/// Creates the key file (exclusively, mode 0600) with fresh random bytes.
fn create_key(dir: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    let mut key = [0; KEY_LEN];
    getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = dir.join(KEY_FILE);
    let tmp = dir.join(format!(".tmp-key-{}", std::process::id()));
    let result = (|| {
        let mut file = private::create_new(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()?;
        // A hard link fails if the key appeared meanwhile: never replace a
        // key other entries were written with.
        std::fs::hard_link(&tmp, &path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map(|()| key)
}

/// Opens `path` without following a symbolic link and checks the open
/// file: a regular file, owned by this user, none of `forbidden` mode bits
/// set. `None` when it does not exist.
fn open_checked(
    path: &Path,
    forbidden: u32,
    what: &'static str,
) -> Result<Option<(File, std::fs::Metadata)>, TrustError> {
    let file = match private::open_nofollow(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) if private::is_symlink_error(&err) => {
            return Err(TrustError::Symlink {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(TrustError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let meta = file.metadata().map_err(|source| TrustError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(TrustError::WrongType {
            path: path.to_owned(),
            expected: "regular file",
        });
    }
    private::check_owner_and_mode(path, &meta, forbidden, what)?;
    Ok(Some((file, meta)))
}

/// Reads an entry; `None` when there is none.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    let Some((mut file, meta)) = open_checked(path, 0o022, "writable by group or others")? else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|source| TrustError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(bytes))
}

/// The MAC of a payload (HMAC takes keys of any length, so this is never
/// `None` in practice).
fn mac(key: &[u8; KEY_LEN]) -> Option<HmacSha256> {
    <HmacSha256 as Mac>::new_from_slice(key).ok()
}

/// Checks an entry and deserializes it; `None` when it cannot be trusted or
/// used.
fn load(engine: &Engine, key: &[u8; KEY_LEN], file: &[u8]) -> Option<Component> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let (tag, payload) = rest.split_at_checked(TAG_LEN)?;
    let mut mac = mac(key)?;
    mac.update(payload);
    // Constant-time comparison.
    mac.verify_slice(tag).ok()?;
    // SAFETY: `payload` was produced by `Component::serialize` of a berth
    // holding this cache's key (its HMAC verifies, and the key is readable
    // only by this user), it lives in our own memory rather than a mapped
    // file, and wasmtime itself rejects payloads from other versions or
    // settings with an error.
    #[allow(
        unsafe_code,
        reason = "deserializing berth's own authenticated cache entry"
    )]
    let component = unsafe { Component::deserialize(engine, payload) };
    component.ok()
}

fn store(
    dir: &Path,
    key: &[u8; KEY_LEN],
    path: &Path,
    component: &Component,
) -> std::io::Result<()> {
    let payload = component.serialize().map_err(std::io::Error::other)?;
    let mut mac = mac(key).ok_or_else(|| std::io::Error::other("HMAC refused the key"))?;
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    // A leftover from a crashed run of this process id.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = private::create_new(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&tag)?;
        file.write_all(&payload)?;
        file.sync_all()?;
        // Replaces whatever had the name, a symbolic link included (the
        // link itself, never its target).
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

/// Ownership, modes and symlink-free opening (Unix).
#[cfg(unix)]
mod private {
    use std::fs::{File, Metadata, OpenOptions};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::Path;

    use super::TrustError;

    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code, reason = "geteuid is always safe")]
        unsafe {
            libc::geteuid()
        }
    }

    pub(super) fn check_owner_and_mode(
        path: &Path,
        meta: &Metadata,
        forbidden: u32,
        what: &'static str,
    ) -> Result<(), TrustError> {
        let uid = euid();
        if meta.uid() != uid {
            return Err(TrustError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & forbidden != 0 {
            return Err(TrustError::Mode {
                path: path.to_owned(),
                mode,
                what,
            });
        }
        Ok(())
    }

    pub(super) fn open_nofollow(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    pub(super) fn is_symlink_error(err: &std::io::Error) -> bool {
        err.raw_os_error() == Some(libc::ELOOP)
    }

    pub(super) fn create_new(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }
}

/// Elsewhere, ownership and modes are not checked.
#[cfg(not(unix))]
mod private {
    use std::fs::{File, Metadata, OpenOptions};
    use std::path::Path;

    use super::TrustError;

    pub(super) fn check_owner_and_mode(
        _path: &Path,
        _meta: &Metadata,
        _forbidden: u32,
        _what: &'static str,
    ) -> Result<(), TrustError> {
        Ok(())
    }

    pub(super) fn open_nofollow(path: &Path) -> std::io::Result<File> {
        File::open(path)
    }

    pub(super) fn is_symlink_error(_err: &std::io::Error) -> bool {
        false
    }

    pub(super) fn create_new(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }
}

#[cfg(test)]
mod tests;
