//! [`Error`]: the one error type of berth's entry points — loading a
//! component, building a platform, binding a listener, TLS, serving —
//! opaque, with `is_*` predicates, in the manner of `hyper::Error`. The
//! specific error (a [`LoadError`](crate::LoadError), a
//! [`TlsError`](crate::tls::TlsError), …) is its
//! [`source`](std::error::Error::source).

use std::fmt;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// Something berth could not set up or serve. See the module docs.
pub struct Error {
    kind: Kind,
    /// What was being done ("cannot listen on 127.0.0.1:80").
    context: String,
    source: Option<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Load,
    Platform,
    Bind,
    Tls,
    Config,
}

impl Error {
    fn new(kind: Kind, context: impl Into<String>, source: impl Into<Source>) -> Self {
        Self {
            kind,
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A component could not be read, compiled or linked.
    pub fn is_load(&self) -> bool {
        self.kind == Kind::Load
    }

    /// A platform config was refused (invalid, or apps that failed).
    pub fn is_platform(&self) -> bool {
        self.kind == Kind::Platform
    }

    /// A listener could not be bound (address in use, no permission).
    pub fn is_bind(&self) -> bool {
        self.kind == Kind::Bind
    }

    /// A certificate or key could not be used.
    pub fn is_tls(&self) -> bool {
        self.kind == Kind::Tls
    }

    /// A server setting is invalid.
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config
    }

    /// Binding `addr` failed with `err`.
    pub(crate) fn bind(addr: std::net::SocketAddr, err: std::io::Error) -> Self {
        Self::new(Kind::Bind, format!("cannot listen on {addr}"), err)
    }

    /// Reading `path` failed with `err`.
    pub(crate) fn read(path: &std::path::Path, err: std::io::Error) -> Self {
        Self::new(Kind::Load, format!("cannot read {}", path.display()), err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("berth::Error")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    /// The context and the cause on one line (`cannot listen on
    /// 127.0.0.1:80: Permission denied (os error 13)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.context.is_empty()) {
            (Some(source), true) => write!(f, "{source}"),
            (Some(source), false) => write!(f, "{}: {source}", self.context),
            (None, _) => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::LoadError> for Error {
    fn from(err: crate::LoadError) -> Self {
        Self::new(Kind::Load, "", err)
    }
}

impl From<crate::platform::BuildError> for Error {
    fn from(err: crate::platform::BuildError) -> Self {
        Self::new(Kind::Platform, "", err)
    }
}

impl From<crate::tls::TlsError> for Error {
    fn from(err: crate::tls::TlsError) -> Self {
        Self::new(Kind::Tls, "", err)
    }
}

impl From<crate::config::InvalidConfig> for Error {
    fn from(err: crate::config::InvalidConfig) -> Self {
        Self::new(Kind::Config, "", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_messages() {
        let addr: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = Error::bind(addr, denied);
        assert!(err.is_bind() && !err.is_load() && !err.is_tls());
        assert!(
            err.to_string()
                .starts_with("cannot listen on 127.0.0.1:80: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
        let load: Error = crate::LoadError::NotWasm {
            what: "x.wasm".into(),
        }
        .into();
        assert!(load.is_load());
        assert!(
            load.to_string()
                .starts_with("x.wasm is not a WebAssembly file"),
            "{load}"
        );
        let config: Error = crate::config::InvalidConfig {
            setting: "max_connections",
        }
        .into();
        assert!(config.is_config());
    }
}
