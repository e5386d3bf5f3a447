//! Micro-benchmark: one request through the runtime with no network —
//! instantiate (or take a reused instance), call the suite guest's /hello,
//! read the whole response body. `cargo bench -p berth-runtime`.
//!
//! The `phase:` benchmarks take the fresh-instance path apart with the same
//! public pieces the runtime uses (engine, linker, store state, pre-
//! instantiated component), so the microseconds can be attributed: store
//! and context creation, instantiation, and the guest call with the body
//! read. Their sum against the whole-path figure is the runtime's own
//! overhead (task spawn, channels, limits bookkeeping).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness"
)]

use std::num::NonZeroU32;

use berth_http::body::empty_host_body;
use berth_http::p2::bindings::ProxyPre;
use berth_http::p2::{IncomingRequest, ResponseOutparam};
use berth_http::{HttpCtx, HttpView};
use berth_runtime::engine::{Concurrency, EngineConfig, build_engine};
use berth_runtime::store::StoreState;
use berth_runtime::{Runtime, RuntimeConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use wasmtime::Store;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../guests/prebuilt/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect("guest fixture")
}

fn runtime(reuse: Option<NonZeroU32>) -> Runtime {
    let config = RuntimeConfig {
        reuse,
        ..RuntimeConfig::default()
    };
    Runtime::new(config, &fixture("suite"), "suite.wasm").expect("suite loads")
}

fn one_request(rt: &tokio::runtime::Runtime, runtime: &Runtime) {
    let body = get(rt, runtime, "/hello");
    assert_eq!(&body[..], b"hello from berth\n");
}

/// One GET of `path` through `runtime`; the whole response body.
fn get(rt: &tokio::runtime::Runtime, runtime: &Runtime, path: &str) -> bytes::Bytes {
    rt.block_on(async {
        let request = http::Request::builder()
            .uri(format!("http://bench.test{path}"))
            .body(empty_host_body())
            .unwrap();
        let response = runtime
            .handle(runtime.next_request_id(), request)
            .await
            .unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fresh = rt.block_on(async { runtime(None) });
    c.bench_function("hello, fresh instance", |b| {
        b.iter(|| one_request(&rt, &fresh))
    });
    let reused = rt.block_on(async { runtime(NonZeroU32::new(u32::MAX)) });
    c.bench_function("hello, reused instance", |b| {
        b.iter(|| one_request(&rt, &reused))
    });
    // A fresh instance of a component whose start-up was snapshotted: what
    // a larger initial memory image costs per instance.
    let config = RuntimeConfig {
        pre_init: true,
        ..RuntimeConfig::default()
    };
    let heavy = rt.block_on(async {
        Runtime::new(config, &fixture("heavy-init"), "heavy-init.wasm").expect("heavy-init loads")
    });
    c.bench_function("heavy-init, fresh pre-initialised instance", |b| {
        b.iter(|| {
            let body = get(&rt, &heavy, "/");
            assert!(body.ends_with(b"built-here: no\n"));
        })
    });
}

/// The fresh path in pieces, on the engine and linker a 0.2 app gets.
fn phases(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = RuntimeConfig::default();
    let engine = build_engine(&EngineConfig::of(&config), Concurrency::Disabled).unwrap();
    let linker = berth_runtime::component::build_linker(&engine, Concurrency::Disabled).unwrap();
    let (component, _) = berth_runtime::cache::compile(&engine, &fixture("suite"), None).unwrap();
    let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let new_store = || {
        let mut store = Store::new(&engine, StoreState::new(&config, HttpCtx::default(), 1));
        store.set_epoch_deadline(1);
        store
    };

    c.bench_function("phase: store + context", |b| b.iter(|| drop(new_store())));
    c.bench_function("phase: store + context + instantiate", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut store = new_store();
                pre.instantiate_async(&mut store).await.unwrap();
            })
        })
    });
    c.bench_function("phase: store + instantiate + handle + read body", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut store = new_store();
                let proxy = pre.instantiate_async(&mut store).await.unwrap();
                let request = http::Request::builder()
                    .uri("http://bench.test/hello")
                    .body(empty_host_body())
                    .unwrap();
                let (tx, rx) = tokio::sync::oneshot::channel();
                let table = store.data_mut().http().table;
                let req = table.push(IncomingRequest::from_http(request)).unwrap();
                let out = table.push(ResponseOutparam::new(tx)).unwrap();
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .unwrap();
                let response = rx.await.unwrap().unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"hello from berth\n");
            })
        })
    });
}

criterion_group!(benches, bench, phases);
criterion_main!(benches);
