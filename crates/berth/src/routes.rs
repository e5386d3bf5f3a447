//! The routing table: which app answers a request, from its host and path.
//!
//! A route is written `HOST` or `HOST/PATH-PREFIX`, where `HOST` is an exact
//! name (`shop.example.com`), a wildcard over subdomains (`*.example.com`:
//! `a.example.com`, `b.a.example.com`, not `example.com` itself) or `*` (any
//! host). Lookup tries the exact host, then the wildcards from the longest
//! suffix down, then `*`; in the first of those with a matching prefix, the
//! longest prefix wins. Prefixes match whole path segments (`/shop` matches
//! `/shop`, `/shop/cart` and `/shop?q=1`, never `/shopping`). A request no
//! route matches has no app (the front-end answers 404): a catch-all is
//! only ever written as one (`*`).
//!
//! Hosts compare case-insensitively and without the port.

use std::collections::HashMap;
use std::fmt;

/// One parsed route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    host: HostPattern,
    /// `/` or a prefix without a trailing slash.
    prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostPattern {
    Exact(String),
    /// The suffix after `*`, with its leading dot (`.example.com`).
    Subdomains(String),
    Any,
}

/// Why a route was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Nothing was written.
    #[error("a route cannot be empty; write `*` to match every request")]
    Empty,
    /// A URL with a scheme was written.
    #[error("`{0}`: a route is HOST or HOST/PATH, without a scheme")]
    Scheme(String),
    /// The host part is not a host name or pattern.
    #[error(
        "`{0}`: the host must be a name (example.com), a wildcard over its subdomains \
         (*.example.com) or `*`"
    )]
    Host(String),
    /// A port was written.
    #[error("`{0}`: routes match host names; a port is not part of a route")]
    Port(String),
    /// The path prefix holds a query, a fragment or an empty segment.
    #[error("`{0}`: the path prefix may not contain `?`, `#` or `//`")]
    Path(String),
}

impl Route {
    /// Parses `HOST` or `HOST/PATH-PREFIX`.
    pub fn parse(text: &str) -> Result<Self, RouteError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RouteError::Empty);
        }
        if text.contains("://") {
            return Err(RouteError::Scheme(text.to_owned()));
        }
        let (host, path) = match text.find('/') {
            Some(at) => text.split_at(at),
            None => (text, "/"),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !is_host_name(suffix) {
                return Err(RouteError::Host(text.to_owned()));
            }
            HostPattern::Subdomains(format!(".{suffix}"))
        } else if host.contains(':') {
            return Err(RouteError::Port(text.to_owned()));
        } else if is_host_name(&host) {
            HostPattern::Exact(host)
        } else {
            return Err(RouteError::Host(text.to_owned()));
        };
        if path.contains(['?', '#']) || path.contains("//") {
            return Err(RouteError::Path(text.to_owned()));
        }
        let prefix = match path.trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        Ok(Self { host, prefix })
    }

    /// Whether `path` (a path, with or without its query) lies under this
    /// route's prefix.
    fn covers(&self, path: &str) -> bool {
        covers(&self.prefix, path)
    }
}

fn covers(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '?']),
        None => false,
    }
}

/// A host name of letters, digits, `-` and `.` (no empty label).
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(host) => f.write_str(host)?,
            HostPattern::Subdomains(suffix) => write!(f, "*{suffix}")?,
            HostPattern::Any => f.write_str("*")?,
        }
        if self.prefix != "/" {
            f.write_str(&self.prefix)?;
        }
        Ok(())
    }
}

/// Two apps claim the same route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route `{route}` is claimed by both `{first}` and `{second}`")]
pub struct RouteClash {
    /// The route.
    pub route: String,
    /// The app that claimed it first.
    pub first: String,
    /// The app that claimed it again.
    pub second: String,
}

/// Prefixes under one host pattern, longest first.
#[derive(Debug, Clone)]
struct Prefixes<T> {
    entries: Vec<(Route, T)>,
}

impl<T> Prefixes<T> {
    fn find(&self, path: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(route, _)| route.covers(path))
            .map(|(_, value)| value)
    }
}

impl<T> Default for Prefixes<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

/// An immutable routing table from routes to `T` (an app).
#[derive(Debug, Clone)]
pub struct Routes<T> {
    exact: HashMap<String, Prefixes<T>>,
    /// Longest suffix first.
    subdomains: Vec<(String, Prefixes<T>)>,
    any: Prefixes<T>,
    len: usize,
}

impl<T: Clone> Routes<T> {
    /// Builds the table from `(route, owner name, value)` entries; two
    /// owners of one route are a clash (every clash is reported).
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (Route, &'a str, T)>,
    ) -> Result<Self, Vec<RouteClash>> {
        let mut owners: HashMap<Route, &'a str> = HashMap::new();
        let mut clashes = Vec::new();
        let mut table = Self::empty();
        for (route, owner, value) in entries {
            if let Some(first) = owners.get(&route) {
                clashes.push(RouteClash {
                    route: route.to_string(),
                    first: (*first).to_owned(),
                    second: owner.to_owned(),
                });
                continue;
            }
            owners.insert(route.clone(), owner);
            let prefixes = match &route.host {
                HostPattern::Exact(host) => table.exact.entry(host.clone()).or_default(),
                HostPattern::Subdomains(suffix) => {
                    match table.subdomains.iter().position(|(s, _)| s == suffix) {
                        Some(at) => &mut table.subdomains[at].1,
                        None => {
                            table.subdomains.push((suffix.clone(), Prefixes::default()));
                            let last = table.subdomains.len() - 1;
                            &mut table.subdomains[last].1
                        }
                    }
                }
                HostPattern::Any => &mut table.any,
            };
            prefixes.entries.push((route, value));
            table.len += 1;
        }
        if !clashes.is_empty() {
            return Err(clashes);
        }
        let longest_first = |p: &mut Prefixes<T>| {
            p.entries
                .sort_by_key(|(route, _)| std::cmp::Reverse(route.prefix.len()));
        };
        table.exact.values_mut().for_each(longest_first);
        table
            .subdomains
            .iter_mut()
            .for_each(|(_, p)| longest_first(p));
        longest_first(&mut table.any);
        table
            .subdomains
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(table)
    }
}

impl<T> Routes<T> {
    /// A table without routes: every request gets 404.
    pub fn empty() -> Self {
        Self {
            exact: HashMap::new(),
            subdomains: Vec::new(),
            any: Prefixes::default(),
            len: 0,
        }
    }

    /// The value routed for `host` (a `Host` header or `:authority`, port
    /// allowed) and `path` (path and query), if any.
    pub fn find(&self, host: &str, path: &str) -> Option<&T> {
        let host = strip_port(host);
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(found) = self.exact.get(host).and_then(|p| p.find(path)) {
            return Some(found);
        }
        for (suffix, prefixes) in &self.subdomains {
            if host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
                && let Some(found) = prefixes.find(path)
            {
                return Some(found);
            }
        }
        self.any.find(path)
    }

    /// How many routes the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no route (every request gets 404).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every route and its value, in lookup order per host pattern: exact
    /// hosts (by name), wildcards (longest suffix first), then `*`.
    pub fn entries(&self) -> Vec<(&Route, &T)> {
        let mut hosts: Vec<_> = self.exact.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        hosts
            .into_iter()
            .map(|(_, p)| p)
            .chain(self.subdomains.iter().map(|(_, p)| p))
            .chain(std::iter::once(&self.any))
            .flat_map(|p| p.entries.iter().map(|(route, value)| (route, value)))
            .collect()
    }
}

/// `host` without a `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|_| host.find(']')) {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &'static str)]) -> Routes<&'static str> {
        Routes::build(
            routes
                .iter()
                .map(|(route, app)| (Route::parse(route).unwrap(), *app, *app)),
        )
        .unwrap()
    }

    #[test]
    fn exact_host_then_wildcards_then_any_and_the_longest_prefix() {
        let routes = table(&[
            ("shop.example.com", "shop"),
            ("example.com/shop", "shop-path"),
            ("example.com/shop/admin", "admin"),
            ("example.com", "site"),
            ("*.example.com", "tenant"),
            ("*.eu.example.com", "eu"),
            ("*/healthz", "health"),
        ]);
        let find = |host, path| routes.find(host, path).copied();
        assert_eq!(find("shop.example.com", "/anything"), Some("shop"));
        assert_eq!(find("Shop.Example.com:8080", "/"), Some("shop"));
        assert_eq!(find("example.com", "/shop"), Some("shop-path"));
        assert_eq!(find("example.com", "/shop/cart?x=1"), Some("shop-path"));
        assert_eq!(find("example.com", "/shop?x=1"), Some("shop-path"));
        assert_eq!(find("example.com", "/shop/admin/users"), Some("admin"));
        assert_eq!(find("example.com", "/shopping"), Some("site"));
        assert_eq!(find("example.com.", "/"), Some("site"));
        assert_eq!(find("a.example.com", "/"), Some("tenant"));
        assert_eq!(find("b.a.example.com", "/"), Some("tenant"));
        assert_eq!(find("x.eu.example.com", "/"), Some("eu"));
        // No route of the exact host covers the path: on to `*`.
        assert_eq!(find("shop.example.com", "/healthz"), Some("shop"));
        assert_eq!(find("other.test", "/healthz"), Some("health"));
        assert_eq!(find("other.test", "/healthz/deep"), Some("health"));
        // Nothing matches: no default app.
        assert_eq!(find("other.test", "/"), None);
        assert_eq!(find("notexample.com", "/"), None);
    }

    #[test]
    fn a_catch_all_is_written_as_one() {
        let routes = table(&[("*", "all"), ("api.test/v1", "v1")]);
        assert_eq!(routes.find("api.test", "/v1/x").copied(), Some("v1"));
        assert_eq!(routes.find("api.test", "/v2").copied(), Some("all"));
        assert_eq!(routes.find("[::1]:8080", "/").copied(), Some("all"));
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        assert_eq!(Route::parse(" "), Err(RouteError::Empty));
        assert!(matches!(
            Route::parse("http://a.test/x"),
            Err(RouteError::Scheme(_))
        ));
        assert!(matches!(
            Route::parse("a.test:8080"),
            Err(RouteError::Port(_))
        ));
        assert!(matches!(Route::parse("a..test"), Err(RouteError::Host(_))));
        assert!(matches!(Route::parse("*a.test"), Err(RouteError::Host(_))));
        assert!(matches!(Route::parse("a_b.test"), Err(RouteError::Host(_))));
        assert!(matches!(
            Route::parse("a.test/x?y"),
            Err(RouteError::Path(_))
        ));
        assert!(matches!(
            Route::parse("a.test//x"),
            Err(RouteError::Path(_))
        ));
        // Trailing slashes and case do not make a different route.
        assert_eq!(
            Route::parse("A.test/x/").unwrap(),
            Route::parse("a.test/x").unwrap()
        );
        assert_eq!(Route::parse("a.test/").unwrap().to_string(), "a.test");
        assert_eq!(
            Route::parse("*.a.test/x").unwrap().to_string(),
            "*.a.test/x"
        );
    }

    #[test]
    fn every_clash_is_reported() {
        let parse = |r| Route::parse(r).unwrap();
        let clashes = Routes::build([
            (parse("a.test"), "one", 1),
            (parse("A.test/"), "two", 2),
            (parse("*/x"), "one", 1),
            (parse("*/x/"), "three", 3),
            (parse("a.test/x"), "two", 2),
        ])
        .unwrap_err();
        assert_eq!(clashes.len(), 2);
        assert_eq!(
            clashes[0].to_string(),
            "route `a.test` is claimed by both `one` and `two`"
        );
        assert_eq!(clashes[1].route, "*/x");
    }
}
