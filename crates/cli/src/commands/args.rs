//! Flag groups several subcommands share: what a guest sees (environment,
//! `wasi:config` values), its outgoing HTTP, and the compilation cache.

use std::path::PathBuf;
use std::time::Duration;

use berth::outbound::{HostPattern, OutboundConfig};
use berth::runtime::wasi_config::ConfigVars;

/// What the guest sees besides its requests.
#[derive(Debug, clap::Args)]
pub(crate) struct GuestArgs {
    /// Set an environment variable for the guest (repeatable). The guest's
    /// environment is otherwise empty.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub(crate) env: Vec<(String, String)>,

    /// Set a runtime configuration value the guest reads with
    /// `wasi:config/store` (repeatable; the last value of a name wins).
    #[arg(long = "config-var", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub(crate) config_vars: Vec<(String, String)>,
}

impl GuestArgs {
    /// The `wasi:config` values given.
    pub(crate) fn config_vars(&self) -> ConfigVars {
        self.config_vars.iter().cloned().collect()
    }
}

/// Where guests may send HTTP requests, and how.
#[derive(Debug, clap::Args)]
pub(crate) struct OutboundArgs {
    /// Let guests send requests to `HOST[:PORT]` (repeatable). Patterns:
    /// `api.example.com`, `*.example.com`, `*`, or an IP (`127.0.0.1:8080`).
    /// Outgoing requests are denied unless allowed; private, loopback and
    /// link-local addresses are refused unless named by IP.
    #[arg(long = "allow-outbound", value_name = "PATTERN")]
    allow_outbound: Vec<HostPattern>,

    /// Trust the CA certificates in this PEM file for outgoing HTTPS
    /// (repeatable), besides the webpki and system roots.
    #[arg(long = "ca-file", value_name = "PATH")]
    ca_files: Vec<PathBuf>,

    /// Reach `HOST[:PORT]` with cleartext HTTP/2 (h2c prior knowledge).
    #[arg(long = "h2c-outbound", value_name = "PATTERN")]
    h2c_outbound: Vec<HostPattern>,

    /// Default connect timeout for outgoing requests, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = berth::outbound::config::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64)]
    outbound_connect_timeout_ms: u64,

    /// Default first-byte timeout for outgoing requests, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = berth::outbound::config::DEFAULT_FIRST_BYTE_TIMEOUT.as_millis() as u64)]
    outbound_first_byte_timeout_ms: u64,

    /// Default between-bytes timeout for outgoing responses, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = berth::outbound::config::DEFAULT_BETWEEN_BYTES_TIMEOUT.as_millis() as u64)]
    outbound_between_bytes_timeout_ms: u64,
}

impl OutboundArgs {
    /// The client configuration these flags describe.
    pub(crate) fn config(&self) -> OutboundConfig {
        OutboundConfig {
            allow: self.allow_outbound.clone(),
            ca_files: self.ca_files.clone(),
            h2c_hosts: self.h2c_outbound.clone(),
            connect_timeout: Duration::from_millis(self.outbound_connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(self.outbound_first_byte_timeout_ms),
            between_bytes_timeout: Duration::from_millis(self.outbound_between_bytes_timeout_ms),
            loop_identity: berth::outbound::config::process_loop_identity(),
            ..Default::default()
        }
    }
}

/// Where compiled components are cached.
#[derive(Debug, clap::Args)]
pub(crate) struct CacheArgs {
    /// Directory of the compilation cache [default: ~/.cache/berth/aot].
    /// It holds executable code: keep it writable only by berth's user.
    #[arg(long, value_name = "DIR", env = "BERTH_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile in memory; neither read nor write the cache (wins over
    /// --cache-dir and BERTH_CACHE_DIR, so it works with either set).
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    /// The cache directory in effect, if any.
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(berth::platform::default_cache_dir)
    }

    /// Whether a cache flag (or `BERTH_CACHE_DIR`) was given.
    pub(crate) fn given(&self) -> bool {
        self.no_cache || self.cache_dir.is_some()
    }
}

/// Parses `NAME=VALUE` (the value may be empty or contain `=`).
pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pair;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(parse_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_pair("A="), Ok(("A".into(), String::new())));
        assert!(parse_pair("=x").is_err());
        assert!(parse_pair("novalue").is_err());
    }
}
