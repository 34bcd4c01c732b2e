//! The API gate's hot path (a valid token: storage reads, no write, no
//! request): the core natively against the component, with in-memory,
//! SQLite and PostgreSQL storage (a throwaway local server, when PostgreSQL
//! is installed), and a fresh instance per call against a reused one; and
//! what a durable SQLite write costs against a crash-safe one.
//! Run with `cargo bench --bench gate`; compare ratios within one run.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use pleo_oauth::imports::storage::postgres_testing::TestServer;
use pleo_oauth::imports::storage::{
    Durability, MemoryStorage, PostgresStorage, SqliteStorage, Storage,
};
use pleo_oauth::native::NativeIo;
use pleo_oauth::{Backends, Runtime, RuntimeConfig};
use pleo_oauth_conformance::callback::{Fixture, config_with, state_of, token_json};
use pleo_oauth_core::connection;

/// Backends over `storage` with a connected `c1` (a token valid for an hour).
fn connected(storage: Arc<dyn Storage>) -> Backends {
    let fixture = Fixture::new();
    let backends = Backends {
        storage,
        ..fixture.backends.clone()
    };
    let mut native = Native(&backends, &fixture);
    native.connect();
    backends
}

struct Native<'a>(&'a Backends, &'a Fixture);

impl Native<'_> {
    fn connect(&mut self) {
        use pleo_oauth::imports::clock::Clock;
        let now = self.1.clock.now_ms();
        let mut io = NativeIo(self.0);
        connection::configure(&mut io, "c1", &config_with(&Default::default())).unwrap();
        let authorization =
            pleo_oauth_core::authorize::begin(&mut io, now, "c1", &Default::default()).unwrap();
        self.1.http.push(Ok(token_json(
            200,
            r#"{"access_token":"AT-bench","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-bench"}"#,
        )));
        let callback = format!("code=CODE&state={}", state_of(&authorization));
        pleo_oauth_core::authorize::complete(&mut io, now, &callback, Some("c1")).unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    // The same component with every memory access bounds-checked.
    let checked = Runtime::new(RuntimeConfig {
        elide_bounds_checks: false,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let dir = std::env::temp_dir().join(format!("pleo-oauth-bench-{}", std::process::id()));
    let sqlite: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.join("bench.db")).expect("sqlite"));
    let memory: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let now = 1_700_000_000_000 + 60_000;
    let postgres_server = TestServer::start_or_skip("benches/gate.rs postgres");
    let mut stores = vec![("memory", memory), ("sqlite", sqlite)];
    if let Some(server) = &postgres_server {
        let url = server.fresh_database();
        stores.push((
            "postgres",
            Arc::new(PostgresStorage::open(&url).expect("postgres")),
        ));
    }

    for (name, storage) in stores {
        let backends = connected(storage);
        let mut group = c.benchmark_group(format!("access-token/{name}"));
        group.bench_function("native", |b| {
            b.iter(|| {
                connection::access_token(&mut NativeIo(&backends), black_box(now), "c1")
                    .expect("a token")
            })
        });
        let mut instance = runtime.instance(backends.clone()).expect("instance");
        group.bench_function("component", |b| {
            b.iter(|| {
                instance
                    .access_token(black_box("c1"))
                    .unwrap()
                    .expect("a token")
            })
        });
        if name == "memory" {
            let mut instance = checked.instance(backends.clone()).expect("instance");
            group.bench_function("component-bounds-checked", |b| {
                b.iter(|| {
                    instance
                        .access_token(black_box("c1"))
                        .unwrap()
                        .expect("a token")
                })
            });
            group.bench_function("component-fresh-instance", |b| {
                b.iter(|| {
                    let mut instance = runtime.instance(backends.clone()).expect("instance");
                    instance
                        .access_token(black_box("c1"))
                        .unwrap()
                        .expect("a token")
                })
            });
        }
        group.finish();
    }

    // What durability across power loss costs: one compare-and-swap write
    // (a refresh makes about six) with `synchronous = FULL` and `NORMAL`.
    // The gate's hot path only reads, so it pays nothing.
    let mut group = c.benchmark_group("sqlite-write");
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let store =
            SqliteStorage::open_with(&dir.join(format!("{name}.db")), durability).expect("sqlite");
        let mut version = store.put("status/c1", b"{}", None).expect("put");
        group.bench_function(name, |b| {
            b.iter(|| {
                version = store
                    .put(
                        "status/c1",
                        black_box(b"{\"state\":\"connected\"}"),
                        Some(version),
                    )
                    .expect("put");
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(gate, benches);
criterion_main!(gate);
