//! `wasi:config/store@0.2.0-rc.1`: runtime configuration values a component
//! reads by key (the operator's `--config-var NAME=VALUE`; the reference
//! host's `-Sconfig-var`).
//!
//! The values are fixed when the app is loaded and shared by every
//! instance; the host never fails a lookup (`upstream` and `io` errors are
//! for hosts that read a remote source).

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

#[allow(missing_docs, reason = "bindgen-generated code")]
mod generated {
    wasmtime::component::bindgen!({
        path: "wit/config",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

use generated::wasi::config::store;

/// The configuration values an app's components see. Cheap to clone.
/// Its `Debug` shows the keys only: values may be secrets and are never
/// logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigVars(Arc<[(String, String)]>);

impl std::fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(key, _)| key))
            .finish()
    }
}

impl ConfigVars {
    /// The value of `key`, if set (the last one wins when a key was given
    /// twice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every key and value, one entry per key, in the order first given.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = Vec::with_capacity(self.0.len());
        for (key, _) in self.0.iter() {
            if !all.iter().any(|(k, _)| k == key) {
                let value = self.get(key).unwrap_or_default().to_owned();
                all.push((key.clone(), value));
            }
        }
        all
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConfigVars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Store data that offers `wasi:config/store`.
pub trait ConfigView: Send {
    /// The values this instance sees.
    fn config_vars(&mut self) -> &ConfigVars;
}

/// The host of `wasi:config/store`: a borrowed view of the values.
struct Store<'a>(&'a ConfigVars);

struct Config;

impl HasData for Config {
    type Data<'a> = Store<'a>;
}

impl store::Host for Store<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.0.get(&key).map(str::to_owned)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self.0.all()))
    }
}

/// Adds `wasi:config/store@0.2.0-rc.1` to `linker`. It is synchronous, so
/// components of either `wasi:http` version import the same interface.
pub fn add_to_linker<T: ConfigView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    store::add_to_linker::<T, Config>(linker, |data| Store(data.config_vars()))
}

#[cfg(test)]
mod tests {
    use super::ConfigVars;

    #[test]
    fn the_last_value_of_a_key_wins_and_get_all_lists_each_key_once() {
        let vars: ConfigVars = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(vars.get("a"), Some("3"));
        assert_eq!(vars.get("b"), Some("2"));
        assert_eq!(vars.get("c"), None);
        assert_eq!(
            vars.all(),
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        assert!(ConfigVars::default().is_empty());
    }
}
