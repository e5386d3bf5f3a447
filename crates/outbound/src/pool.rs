//! Keep-alive connection reuse per origin.
//!
//! HTTP/1.1 connections carry one request at a time: a pooled one is handed
//! out only when hyper reports it ready (its previous response body was read
//! to the end). An HTTP/2 connection is shared by all requests to its origin.
//! Idle entries expire, checked on every checkout and by the client's
//! reaper ([`Pool::reap`]) so that an origin never used again does not keep
//! its sockets, nor its entry; each origin keeps at most a fixed number of
//! HTTP/1.1 connections (requests beyond that use a connection that is not
//! kept).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_http::HostBody;
use hyper::client::conn::{http1, http2};

/// Where connections go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A connection's request sender.
#[derive(Debug)]
pub(crate) enum Sender {
    H1(http1::SendRequest<HostBody>),
    H2(http2::SendRequest<HostBody>),
}

impl Sender {
    fn is_usable(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    sender: Sender,
    last_used: Instant,
}

/// The pool.
#[derive(Debug)]
pub(crate) struct Pool {
    entries: Mutex<HashMap<Origin, Vec<Entry>>>,
    idle_timeout: Duration,
    max_per_origin: usize,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_per_origin: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            idle_timeout,
            max_per_origin,
        }
    }

    fn alive(&self, entry: &Entry, now: Instant) -> bool {
        !entry.sender.is_closed() && now.duration_since(entry.last_used) < self.idle_timeout
    }

    /// A ready sender for `origin`, if the pool has one.
    pub(crate) fn checkout(&self, origin: &Origin) -> Option<Sender> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(origin)?;
        let now = Instant::now();
        list.retain(|e| self.alive(e, now));
        if list.is_empty() {
            map.remove(origin);
            return None;
        }
        let found = list.iter().position(|e| e.sender.is_usable())?;
        let entry = &mut list[found];
        if let Sender::H2(s) = &entry.sender {
            entry.last_used = now;
            return Some(Sender::H2(s.clone()));
        }
        Some(list.swap_remove(found).sender)
    }

    /// Offers a sender back (HTTP/1.1 right after the response head: hyper
    /// marks it ready once the body has been read). Returns false when the
    /// origin already holds its maximum.
    pub(crate) fn checkin(&self, origin: Origin, sender: Sender) -> bool {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(origin).or_default();
        if let Sender::H2(_) = sender
            && list
                .iter()
                .any(|e| matches!(e.sender, Sender::H2(_)) && !e.sender.is_closed())
        {
            return true;
        }
        if list.len() >= self.max_per_origin {
            return false;
        }
        list.push(Entry {
            sender,
            last_used: Instant::now(),
        });
        true
    }

    /// Drops closed and expired connections (closing them) and the entries
    /// of origins left with none. Returns how many connections remain.
    pub(crate) fn reap(&self) -> usize {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, list| {
            list.retain(|e| self.alive(e, now));
            !list.is_empty()
        });
        map.values().map(Vec::len).sum()
    }

    /// Closes the least recently used idle HTTP/1.1 connection, to make
    /// room under the client's connection cap. Returns whether there was
    /// one.
    pub(crate) fn evict_idle(&self) -> bool {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = map
            .iter()
            .flat_map(|(origin, list)| list.iter().enumerate().map(move |(i, e)| (origin, i, e)))
            .filter(|(_, _, e)| matches!(e.sender, Sender::H1(_)) && e.sender.is_usable())
            .min_by_key(|(_, _, e)| e.last_used)
            .map(|(origin, i, _)| (origin.clone(), i));
        let Some((origin, i)) = oldest else {
            return false;
        };
        if let Some(list) = map.get_mut(&origin) {
            list.swap_remove(i);
            if list.is_empty() {
                map.remove(&origin);
            }
        }
        true
    }

    /// Whether any connection to `origin` is held.
    pub(crate) fn holds(&self, origin: &Origin) -> bool {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(origin)
    }

    /// The origins with connections held.
    pub(crate) fn origins(&self) -> Vec<Origin> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }

    /// Connections currently held (busy or idle), for tests and metrics.
    pub(crate) fn len(&self) -> usize {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }
}
