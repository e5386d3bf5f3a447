//! Micro-benchmark: one request through the runtime with no network —
//! instantiate (or take a reused instance), call the suite guest's /hello,
//! read the whole response body. `cargo bench -p berth-runtime`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness"
)]

use std::num::NonZeroU32;

use berth_http::body::empty_host_body;
use berth_runtime::{Runtime, RuntimeConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;

fn runtime(reuse: Option<NonZeroU32>) -> Runtime {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../guests/prebuilt/suite.wasm"
    );
    let bytes = std::fs::read(path).expect("suite fixture");
    let config = RuntimeConfig {
        reuse,
        ..RuntimeConfig::default()
    };
    Runtime::new(config, &bytes, "suite.wasm").expect("suite loads")
}

fn one_request(rt: &tokio::runtime::Runtime, runtime: &Runtime) {
    rt.block_on(async {
        let request = http::Request::builder()
            .uri("http://bench.test/hello")
            .body(empty_host_body())
            .unwrap();
        let response = runtime
            .handle(runtime.next_request_id(), request)
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello from berth\n");
    });
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
