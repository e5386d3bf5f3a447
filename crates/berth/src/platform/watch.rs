//! Reloading a platform from its config file: on demand
//! ([`reload_from_file`], e.g. on SIGHUP) and when the file or a component
//! it names changes ([`watch`]).
//!
//! A change is acted on once it has settled: two checks in a row
//! (`interval` apart) must see the same size and modification time of
//! every watched file, so a component being written in place is not read
//! half-written; a file that is still broken after settling fails to
//! compile, the reload is refused with a log line, and the old version
//! keeps serving until the next change.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::file::{self, FileError};
use super::{BuildError, Platform, ReloadSummary};

/// How often [`watch`] looks at the files by default (2 s).
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload from the file was refused (the old version keeps serving).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error("{0}")]
    File(#[from] FileError),
    /// An app of the new version does not build.
    #[error("{0}")]
    Build(#[from] BuildError),
}

/// Loads the config file at `path` and swaps it in (see
/// [`Platform::reload`]). Blocks while new components compile: call it
/// off the async workers (`spawn_blocking`).
pub fn reload_from_file(platform: &Platform, path: &Path) -> Result<ReloadSummary, ReloadError> {
    let config = file::load(path)?;
    Ok(platform.reload(config)?)
}

/// Logs what a reload did, or why it was refused.
pub fn log_reload(path: &Path, result: &Result<ReloadSummary, ReloadError>) {
    match result {
        Ok(summary) => tracing::info!(
            config = %path.display(),
            built = ?summary.built,
            kept = ?summary.kept,
            removed = ?summary.removed,
            "config reloaded"
        ),
        Err(err) => tracing::error!(
            config = %path.display(),
            "config reload refused; the running version keeps serving:\n{err}"
        ),
    }
}

/// Size and modification time of each watched file (`None` when missing).
type Stamps = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

/// The config file, every component file of the running version, and
/// every one the file names now (a refused version's new component is
/// watched too, so fixing it is enough to retry).
fn stamps(platform: &Platform, path: &Path) -> Stamps {
    let mut files = vec![path.to_owned()];
    for app in platform.apps() {
        files.extend(app.files().iter().cloned());
    }
    files.extend(file::component_paths(path));
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|file| {
            let stamp = std::fs::metadata(&file)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (file, stamp)
        })
        .collect()
}

/// Watches the config file at `path` and the component files of the
/// running version every `interval`, and reloads once a change has
/// settled. Runs until dropped (abort its task to stop it).
pub async fn watch(platform: Platform, path: PathBuf, interval: Duration) {
    let mut seen = stamps(&platform, &path);
    let mut changing: Option<Stamps> = None;
    loop {
        tokio::time::sleep(interval).await;
        let now = stamps(&platform, &path);
        if now == seen {
            changing = None;
            continue;
        }
        if changing.as_ref() != Some(&now) {
            // Changed since the last look: wait for it to settle.
            changing = Some(now);
            continue;
        }
        changing = None;
        let (reloaded, file) = (platform.clone(), path.clone());
        let result = tokio::task::spawn_blocking(move || reload_from_file(&reloaded, &file)).await;
        match result {
            Ok(result) => log_reload(&path, &result),
            Err(err) => tracing::error!("config reload task failed: {err}"),
        }
        // Whatever the outcome, wait for the next change.
        seen = stamps(&platform, &path);
    }
}
