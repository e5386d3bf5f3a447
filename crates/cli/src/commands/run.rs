//! `berth run COMPONENT [ARGS]...`: run a wasi:cli command component.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth::RuntimeConfig;
use berth::runtime::command::{self, CommandConfig, Preopen};

use super::args::{CacheArgs, GuestArgs, OutboundArgs};

/// Exit code of a command that trapped or broke a limit (128 + SIGABRT, as
/// wasmtime uses), distinct from the 1 of a command returning `err`.
const TRAP_EXIT_CODE: u8 = 134;

/// Run `wasi:cli/run` of a command component.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub(crate) struct RunCommand {
    /// The command component (.wasm): exports `wasi:cli/run@0.2.x` or
    /// `wasi:cli/run@0.3.x`.
    component: PathBuf,

    /// Arguments for the command (its `argv[0]` is the component's file
    /// name).
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,

    /// Give the command a host directory: `HOST` (seen at the same path) or
    /// `HOST::GUEST` (repeatable). It sees no other files.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<Preopen>,

    #[command(flatten)]
    guest: GuestArgs,

    #[command(flatten)]
    outbound: OutboundArgs,

    /// Memory the command may use (all its memories together), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (berth_runtime::config::DEFAULT_MEMORY_LIMIT >> 20) as u64)]
    memory_limit_mib: u64,

    /// CPU time the command may use, in milliseconds [default: unlimited].
    #[arg(long, value_name = "MS")]
    cpu_time_limit_ms: Option<u64>,

    /// Wall-clock time the command may take, in milliseconds [default:
    /// unlimited].
    #[arg(long, value_name = "MS")]
    wall_time_limit_ms: Option<u64>,

    #[command(flatten)]
    cache: CacheArgs,
}

fn parse_dir(text: &str) -> Result<Preopen, String> {
    let (host, guest) = match text.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (text, text),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("expected HOST or HOST::GUEST, got {text:?}"));
    }
    Ok(Preopen {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
    })
}

impl RunCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let limit = |ms: Option<u64>| ms.map_or(Duration::MAX, Duration::from_millis);
        let runtime = RuntimeConfig {
            cpu_time_limit: limit(self.cpu_time_limit_ms),
            wall_time_limit: limit(self.wall_time_limit_ms),
            memory_limit: usize::try_from(self.memory_limit_mib << 20)
                .context("--memory-limit-mib is too large")?,
            env: self.guest.env.clone(),
            config_vars: self.guest.config_vars(),
            cache_dir: self.cache.dir(),
            ..RuntimeConfig::default()
        };
        if runtime.cpu_time_limit.is_zero() || runtime.wall_time_limit.is_zero() {
            bail!("time limits must be greater than zero");
        }
        let bytes = std::fs::read(&self.component).with_context(|| {
            format!(
                "cannot read component {}: expected a path to a WebAssembly command component \
                 (.wasm) exporting wasi:cli/run",
                self.component.display()
            )
        })?;
        let what = self.component.display().to_string();
        let program = self
            .component
            .file_name()
            .map_or_else(|| what.clone(), |n| n.to_string_lossy().into_owned());
        let mut args = vec![program];
        args.extend(self.args);
        let config = CommandConfig {
            runtime,
            args,
            preopens: self.dirs,
        };
        let client = berth::outbound::DefaultClient::new(self.outbound.config())?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = tokio.block_on(command::run(&bytes, &what, config, Some(Arc::new(client))));
        match result {
            Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
            Err(err @ command::RunError::Trap { .. }) => {
                eprintln!("error: {err}");
                Ok(ExitCode::from(TRAP_EXIT_CODE))
            }
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dir;

    #[test]
    fn dirs_map_a_host_path_to_a_guest_path() {
        let same = parse_dir("/data").unwrap();
        assert_eq!(
            (same.host.to_str(), same.guest.as_str()),
            (Some("/data"), "/data")
        );
        let mapped = parse_dir("./fixtures::/").unwrap();
        assert_eq!(
            (mapped.host.to_str(), mapped.guest.as_str()),
            (Some("./fixtures"), "/")
        );
        assert!(parse_dir("::/x").is_err());
        assert!(parse_dir("/x::").is_err());
    }
}
