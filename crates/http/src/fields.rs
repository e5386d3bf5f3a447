//! `FieldMap`: the host side of a `fields` resource (headers and trailers).
//!
//! One implementation serves every `wasi:http` version. It owns the rules the
//! WIT leaves to the host: which names guests may not set (see
//! [`FORBIDDEN_HEADERS`]), what makes a name or value invalid, immutable
//! views, and a bound on the total size of a header block, counted with a
//! per-entry overhead so a flood of empty values is bounded too.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::HeaderError;
use crate::memory::{Charge, HostMemory, OverBudget};

/// Default bound on one `fields` block: 64 KiB, counting each entry as
/// `name + value + 32` bytes (the HTTP/2 accounting rule). Generous for real
/// headers (browsers send 1–2 KiB; hyper refuses incoming blocks much larger)
/// and small enough that a guest cannot make the host allocate without bound.
pub const DEFAULT_FIELDS_SIZE_LIMIT: usize = 64 * 1024;

/// Bytes added to every entry for the size accounting (as in HTTP/2 HPACK).
pub const FIELD_ENTRY_OVERHEAD: usize = 32;

/// Header names a guest may never set, append or delete, and that are removed
/// when fields become the headers of an outgoing message. They are
/// connection-level (hop-by-hop) fields the host manages itself; letting a
/// guest set them would allow response splitting or request smuggling.
///
/// **What guests may not set, they do not see.** The same names are removed
/// from every header block that reaches a guest from the network (incoming
/// requests, upstream responses, trailers; see [`hide_forbidden`]), so a
/// guest that copies one message's headers into another never meets
/// `forbidden`. The request's authority stays available through
/// `authority()`. wasmtime's own host behaves the same way, and guest
/// libraries (wstd, componentize-js proxies) rely on it.
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// Returns true when `name` is in [`FORBIDDEN_HEADERS`].
pub fn is_forbidden(name: &HeaderName) -> bool {
    FORBIDDEN_HEADERS.contains(&name.as_str())
}

/// Parses a guest-provided field name: it must be an RFC 9110 token.
pub fn parse_name(name: &str) -> Result<HeaderName, HeaderError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::InvalidSyntax)
}

/// Parses a guest-provided field value: no CR, LF, NUL or other control
/// bytes (horizontal tab is allowed).
pub fn parse_value(value: &[u8]) -> Result<HeaderValue, HeaderError> {
    HeaderValue::from_bytes(value).map_err(|_| HeaderError::InvalidSyntax)
}

fn entry_size(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + FIELD_ENTRY_OVERHEAD
}

/// Total accounted size of a header map.
pub fn fields_size(map: &HeaderMap) -> usize {
    map.iter().map(|(n, v)| entry_size(n, v)).sum()
}

/// The host representation of a `fields` resource.
#[derive(Debug)]
pub struct FieldMap {
    map: HeaderMap,
    mutable: bool,
    size: usize,
    limit: usize,
    /// Its bytes, held against the instance's memory budget (see
    /// [`crate::memory`]) while it lives in the guest's table.
    charge: Charge,
}

impl FieldMap {
    /// An empty, mutable map bounded by `limit` bytes.
    pub fn new_mutable(limit: usize) -> Self {
        Self {
            map: HeaderMap::new(),
            mutable: true,
            size: 0,
            limit,
            charge: Charge::none(),
        }
    }

    /// An immutable view of headers that came from the network. No limit
    /// check: the front-end (hyper) has already bounded them.
    pub fn new_immutable(map: HeaderMap) -> Self {
        let size = fields_size(&map);
        Self {
            map,
            mutable: false,
            size,
            limit: usize::MAX,
            charge: Charge::none(),
        }
    }

    /// Charges these fields' bytes (and later growth) to `memory`.
    pub fn charged(mut self, memory: &HostMemory) -> Result<Self, OverBudget> {
        self.charge = memory.charge(self.size)?;
        Ok(self)
    }

    /// Builds mutable fields from a guest's list, as `fields.from-list`.
    pub fn from_list(
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
        limit: usize,
    ) -> Result<Self, HeaderError> {
        Self::new_mutable(limit).filled(entries)
    }

    /// These fields with `entries` appended, as `fields.from-list`.
    pub fn filled(
        mut self,
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, HeaderError> {
        for (name, value) in entries {
            self.append(&name, &value)?;
        }
        Ok(self)
    }

    /// The underlying map.
    pub fn map(&self) -> &HeaderMap {
        &self.map
    }

    /// Consumes the fields, yielding the map.
    pub fn into_map(self) -> HeaderMap {
        self.map
    }

    /// Consumes the fields, yielding the map and the charge that holds its
    /// bytes (for a message that keeps the headers in the guest's table).
    pub fn into_parts(self) -> (HeaderMap, Charge) {
        (self.map, self.charge)
    }

    /// Whether the guest may change these fields.
    pub fn is_mutable(&self) -> bool {
        self.mutable
    }

    /// Makes these fields read-only (they became part of a message).
    pub fn freeze(&mut self) {
        self.mutable = false;
    }

    /// A mutable copy, as `fields.clone`, charged to `memory`. The copy
    /// keeps the size limit of the original if it had one, and the default
    /// otherwise.
    pub fn clone_mutable(&self, memory: &HostMemory) -> Result<Self, OverBudget> {
        let limit = if self.limit == usize::MAX {
            DEFAULT_FIELDS_SIZE_LIMIT.max(self.size)
        } else {
            self.limit
        };
        Ok(Self {
            map: self.map.clone(),
            mutable: true,
            size: self.size,
            limit,
            charge: memory.charge(self.size)?,
        })
    }

    /// Sets the size to `size`, charging the difference; beyond the
    /// instance's memory budget, refused.
    fn resize(&mut self, size: usize) -> Result<(), HeaderError> {
        self.charge
            .resize(size)
            .map_err(|over| HeaderError::SizeExceeded { limit: over.limit })?;
        self.size = size;
        Ok(())
    }

    /// All values of `name`, in order. Invalid names have no values.
    pub fn get(&self, name: &str) -> Vec<Vec<u8>> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => self
                .map
                .get_all(&name)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether `name` has at least one value.
    pub fn has(&self, name: &str) -> bool {
        HeaderName::from_bytes(name.as_bytes()).is_ok_and(|n| self.map.contains_key(&n))
    }

    /// All entries in order, names lower-cased.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.map
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Accounted size of all values of `name`.
    fn size_of(&self, name: &HeaderName) -> usize {
        self.map
            .get_all(name)
            .iter()
            .map(|v| entry_size(name, v))
            .sum()
    }

    fn check_mutation(&self, name: &str) -> Result<HeaderName, HeaderError> {
        if !self.mutable {
            return Err(HeaderError::Immutable);
        }
        let name = parse_name(name)?;
        if is_forbidden(&name) {
            return Err(HeaderError::Forbidden);
        }
        Ok(name)
    }

    /// Replaces all values of `name`, as `fields.set`. Nothing changes when
    /// any value is invalid or the result would exceed the limit.
    pub fn set(&mut self, name: &str, values: &[Vec<u8>]) -> Result<(), HeaderError> {
        let name = self.check_mutation(name)?;
        let values = values
            .iter()
            .map(|v| parse_value(v))
            .collect::<Result<Vec<_>, _>>()?;
        let removed = self.size_of(&name);
        let added: usize = values.iter().map(|v| entry_size(&name, v)).sum();
        let new_size = self.size - removed + added;
        if new_size > self.limit {
            return Err(HeaderError::SizeExceeded { limit: self.limit });
        }
        self.resize(new_size)?;
        self.map.remove(&name);
        for value in values {
            self.map.append(name.clone(), value);
        }
        Ok(())
    }

    /// Removes all values of `name`, as `fields.delete`.
    pub fn delete(&mut self, name: &str) -> Result<(), HeaderError> {
        let name = self.check_mutation(name)?;
        let removed = self.size_of(&name);
        self.map.remove(&name);
        self.resize(self.size - removed)
    }

    /// Adds one value to `name`, as `fields.append`.
    pub fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let name = self.check_mutation(name)?;
        let value = parse_value(value)?;
        let added = entry_size(&name, &value);
        if self.size + added > self.limit {
            return Err(HeaderError::SizeExceeded { limit: self.limit });
        }
        self.resize(self.size + added)?;
        self.map.append(name, value);
        Ok(())
    }
}

/// Removes forbidden (connection-level) fields from a map that is about to be
/// sent, returning how many entries were dropped. Applied to every outgoing
/// message and trailer block so a guest that reuses incoming headers (which
/// may carry `host` or `connection`) cannot pass them on.
pub fn strip_forbidden(map: &mut HeaderMap) -> usize {
    let mut dropped = 0;
    for name in FORBIDDEN_HEADERS {
        if let http::header::Entry::Occupied(e) = map.entry(*name) {
            dropped += e.remove_entry_mult().1.count();
        }
    }
    dropped
}

/// Removes the [`FORBIDDEN_HEADERS`] from a header block that came from the
/// network (an incoming request, an upstream response, trailers) before a
/// guest sees it.
pub fn hide_forbidden(mut map: HeaderMap) -> HeaderMap {
    strip_forbidden(&mut map);
    map
}

/// Expands, inside an `impl HostFields for HttpCtxView` block of either
/// `wasi:http` version, the `fields` methods whose WIT signatures are the
/// same in 0.2 and 0.3 (all of them but 0.2's `entries` and 0.3's
/// `copy-all` / `get-and-delete`), so both versions run one implementation.
/// Needs `FieldMap`, `FieldsError` and `Resource` in scope.
macro_rules! shared_fields_methods {
    () => {
        fn new(&mut self) -> wasmtime::Result<Resource<FieldMap>> {
            let fields =
                FieldMap::new_mutable(self.ctx.fields_size_limit).charged(&self.ctx.memory)?;
            Ok(self.table.push(fields)?)
        }

        fn from_list(
            &mut self,
            entries: Vec<(String, Vec<u8>)>,
        ) -> Result<Resource<FieldMap>, FieldsError> {
            let fields = FieldMap::new_mutable(self.ctx.fields_size_limit)
                .charged(&self.ctx.memory)
                .map_err(|over| crate::error::HeaderError::SizeExceeded { limit: over.limit })?
                .filled(entries)?;
            Ok(self.table.push(fields)?)
        }

        fn get(
            &mut self,
            fields: Resource<FieldMap>,
            name: String,
        ) -> wasmtime::Result<Vec<Vec<u8>>> {
            Ok(self.table.get(&fields)?.get(&name))
        }

        fn has(&mut self, fields: Resource<FieldMap>, name: String) -> wasmtime::Result<bool> {
            Ok(self.table.get(&fields)?.has(&name))
        }

        fn set(
            &mut self,
            fields: Resource<FieldMap>,
            name: String,
            values: Vec<Vec<u8>>,
        ) -> Result<(), FieldsError> {
            Ok(self.table.get_mut(&fields)?.set(&name, &values)?)
        }

        fn delete(&mut self, fields: Resource<FieldMap>, name: String) -> Result<(), FieldsError> {
            Ok(self.table.get_mut(&fields)?.delete(&name)?)
        }

        fn append(
            &mut self,
            fields: Resource<FieldMap>,
            name: String,
            value: Vec<u8>,
        ) -> Result<(), FieldsError> {
            Ok(self.table.get_mut(&fields)?.append(&name, &value)?)
        }

        fn clone(&mut self, fields: Resource<FieldMap>) -> wasmtime::Result<Resource<FieldMap>> {
            // No error in the WIT signature: past the instance's memory
            // budget, a trap.
            let copy = self.table.get(&fields)?.clone_mutable(&self.ctx.memory)?;
            Ok(self.table.push(copy)?)
        }

        fn drop(&mut self, fields: Resource<FieldMap>) -> wasmtime::Result<()> {
            self.table.delete(fields)?;
            Ok(())
        }
    };
}
pub(crate) use shared_fields_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_append_delete() {
        let mut f = FieldMap::new_mutable(DEFAULT_FIELDS_SIZE_LIMIT);
        f.append("X-A", b"1").unwrap();
        f.append("x-a", b"2").unwrap();
        assert_eq!(f.get("x-a"), vec![b"1".to_vec(), b"2".to_vec()]);
        assert!(f.has("X-A"));
        f.set("x-a", &[b"3".to_vec()]).unwrap();
        assert_eq!(f.get("x-a"), vec![b"3".to_vec()]);
        f.delete("x-a").unwrap();
        assert!(!f.has("x-a"));
        assert_eq!(f.size, 0);
    }

    #[test]
    fn rejects_bad_syntax() {
        let mut f = FieldMap::new_mutable(DEFAULT_FIELDS_SIZE_LIMIT);
        for name in ["", "a b", "a:b", "é", "a\r\nb", "(x)"] {
            assert_eq!(
                f.append(name, b"v"),
                Err(HeaderError::InvalidSyntax),
                "{name:?}"
            );
        }
        for value in [&b"a\rb"[..], b"a\nb", b"a\0b", b"\x7f"] {
            assert_eq!(f.append("x", value), Err(HeaderError::InvalidSyntax));
        }
        assert!(f.append("x", b"tab\tok").is_ok());
    }

    #[test]
    fn rejects_forbidden_names_in_any_case() {
        let mut f = FieldMap::new_mutable(DEFAULT_FIELDS_SIZE_LIMIT);
        for name in FORBIDDEN_HEADERS {
            assert_eq!(f.append(name, b"x"), Err(HeaderError::Forbidden));
            assert_eq!(
                f.set(&name.to_uppercase(), &[]),
                Err(HeaderError::Forbidden)
            );
            assert_eq!(f.delete(name), Err(HeaderError::Forbidden));
        }
    }

    #[test]
    fn immutable_rejects_every_mutation() {
        let mut f = FieldMap::new_immutable(HeaderMap::new());
        assert_eq!(f.append("x", b"1"), Err(HeaderError::Immutable));
        assert_eq!(f.set("x", &[]), Err(HeaderError::Immutable));
        assert_eq!(f.delete("x"), Err(HeaderError::Immutable));
        let mut copy = f.clone_mutable(&HostMemory::default()).unwrap();
        assert!(copy.append("x", b"1").is_ok());
    }

    #[test]
    fn copies_and_growth_count_against_the_instance_budget() {
        let memory = HostMemory::new(8_000);
        let mut block = FieldMap::new_mutable(DEFAULT_FIELDS_SIZE_LIMIT)
            .charged(&memory)
            .unwrap();
        block.append("x-big", &[b'v'; 3000]).unwrap();
        let held = memory.host_bytes();
        assert_eq!(held, 5 + 3000 + 32);
        let copy = block.clone_mutable(&memory).unwrap();
        assert_eq!(memory.host_bytes(), 2 * held);
        // A third copy would pass the budget: refused, nothing held for it.
        let err = block.clone_mutable(&memory).unwrap_err();
        assert_eq!(err.asked, held);
        assert_eq!(memory.host_bytes(), 2 * held);
        // Growth past it is a size error; shrinking gives bytes back.
        assert_eq!(
            block.append("x-more", &[b'v'; 2000]),
            Err(HeaderError::SizeExceeded { limit: 8_000 })
        );
        block.delete("x-big").unwrap();
        assert_eq!(memory.host_bytes(), held);
        drop(copy);
        assert_eq!(memory.host_bytes(), 0);
    }

    #[test]
    fn size_limit_counts_entry_overhead() {
        let mut f = FieldMap::new_mutable(100);
        // "a" + "" + 32 = 33 bytes per entry: three fit, the fourth does not.
        for _ in 0..3 {
            f.append("a", b"").unwrap();
        }
        assert_eq!(
            f.append("a", b""),
            Err(HeaderError::SizeExceeded { limit: 100 })
        );
        // A failed set leaves the map unchanged.
        assert!(f.set("a", &vec![Vec::new(); 4]).is_err());
        assert_eq!(f.get("a").len(), 3);
    }

    #[test]
    fn from_list_validates_every_entry() {
        let ok = FieldMap::from_list([("a".into(), b"1".to_vec())], 1024).unwrap();
        assert_eq!(ok.entries(), vec![("a".to_owned(), b"1".to_vec())]);
        let err = FieldMap::from_list([("host".into(), b"x".to_vec())], 1024).unwrap_err();
        assert_eq!(err, HeaderError::Forbidden);
    }

    #[test]
    fn strip_forbidden_removes_all_values() {
        let mut map = HeaderMap::new();
        map.append("connection", HeaderValue::from_static("close"));
        map.append("connection", HeaderValue::from_static("x"));
        map.append("host", HeaderValue::from_static("h"));
        map.append("x-ok", HeaderValue::from_static("y"));
        assert_eq!(strip_forbidden(&mut map), 3);
        assert_eq!(map.len(), 1);
    }
}
