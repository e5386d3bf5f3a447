//! Pre-initialisation (`RuntimeConfig::pre_init`): a component's start-up
//! runs once at load and every fresh instance starts from the snapshot; a
//! start-up that cannot be snapshotted fails the load with a clear error.

use std::time::{Duration, Instant};

use berth::runtime::preinit::PreInitError;
use berth::{LoadError, Runtime, RuntimeConfig};

use crate::support::{Proto, TestServer, fixture, get, one_at_a_time, test_config};

fn pre_init_config() -> RuntimeConfig {
    RuntimeConfig {
        pre_init: true,
        ..test_config()
    }
}

fn load_error(component: &str, config: RuntimeConfig) -> PreInitError {
    match Runtime::new(config, &fixture(component), component) {
        Err(LoadError::PreInit { what, source }) => {
            assert_eq!(what, component);
            source
        }
        Err(other) => panic!("expected a pre-initialisation error, got {other}"),
        Ok(_) => panic!("{component} loaded"),
    }
}

#[tokio::test]
async fn fresh_instances_start_from_the_snapshot() {
    let server = TestServer::start_with("heavy-init", pre_init_config()).await;
    for proto in [Proto::H1, Proto::H2, Proto::H1] {
        let (status, body) = get(&server, proto, "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("primes below 2000000: 148916, largest 1999993"),
            "{body}"
        );
        assert!(body.contains("built-here: no"), "{body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn without_pre_init_every_fresh_instance_builds_its_own_table() {
    let server = TestServer::start_with("heavy-init", test_config()).await;
    for proto in [Proto::H1, Proto::H2] {
        let (status, body) = get(&server, proto, "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("primes below 2000000: 148916"), "{body}");
        assert!(body.contains("built-here: yes"), "{body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_component_without_the_start_up_export_is_refused() {
    let err = load_error("suite", pre_init_config());
    assert!(matches!(err, PreInitError::NoInitExport), "{err}");
    assert!(err.to_string().contains("wizer-initialize"), "{err}");
}

#[tokio::test]
async fn a_start_up_that_leaves_a_stream_open_is_refused() {
    // Printing opens stdout: the snapshot would keep a handle to nothing.
    let err = load_error("init-prints", pre_init_config());
    assert!(matches!(err, PreInitError::ResourcesLeft), "{err}");
    assert!(err.to_string().contains("host resources open"), "{err}");
}

#[tokio::test]
async fn a_start_up_that_traps_is_refused() {
    let err = load_error("init-traps", pre_init_config());
    assert!(matches!(err, PreInitError::Init(_)), "{err}");
}

#[tokio::test]
async fn a_start_up_that_never_returns_is_stopped_by_its_cpu_limit() {
    let _alone = one_at_a_time().await;
    let config = RuntimeConfig {
        pre_init_time_limit: Duration::from_millis(300),
        ..pre_init_config()
    };
    let started = Instant::now();
    let err = load_error("init-loops", config);
    assert!(matches!(err, PreInitError::Init(_)), "{err}");
    assert!(err.to_string().contains("CPU"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn misbehaving_start_ups_serve_normally_without_pre_init() {
    for component in ["init-prints", "init-traps", "init-loops"] {
        let server = TestServer::start_with(component, test_config()).await;
        let (status, body) = get(&server, Proto::H1, "/").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{component}");
        server.shutdown().await;
    }
}
