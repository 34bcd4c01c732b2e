//! The storage contract and lifecycle scenarios on PostgreSQL, through the
//! component: `PostgresStorage` on a throwaway cluster
//! (`pleo_oauth::imports::storage::postgres_testing`), which a machine
//! without PostgreSQL skips loudly (and CI, with `CI=true`, fails).

use std::sync::Arc;

use pleo_oauth::connections::State;
use pleo_oauth::imports::storage::postgres_testing::TestServer;
use pleo_oauth::imports::storage::{PostgresOptions, PostgresStorage, Storage, contract};
use pleo_oauth::{Backends, Instance};
use pleo_oauth_conformance::callback::{Fixture, Native, token_json};
use pleo_oauth_conformance::lifecycle::{self, CONNECTION, LifecycleCase};
use pleo_oauth_conformance::{check_all, expect_eq, load, runtime};

const HOUR: u64 = 3_600_000;

/// A fresh database on the shared cluster, and the fixture's backends with
/// it as storage; `None` when the test is skipped.
fn on_postgres(test: &str) -> Option<(Arc<TestServer>, Arc<PostgresStorage>, Fixture, Backends)> {
    let server = TestServer::shared(test)?;
    let storage = Arc::new(PostgresStorage::open(&server.fresh_database()).expect("open"));
    let fixture = Fixture::over(storage.clone());
    let backends = fixture.backends.clone();
    Some((server, storage, fixture, backends))
}

fn component(backends: &Backends) -> Instance {
    runtime().instance(backends.clone()).expect("an instance")
}

#[test]
fn postgres_keeps_the_storage_contract() {
    let Some((server, storage, ..)) = on_postgres("postgres_keeps_the_storage_contract") else {
        return;
    };
    contract::check(storage.as_ref());
    let url = server.fresh_database();
    let handles: Vec<Arc<dyn Storage>> = (0..3)
        .map(|_| Arc::new(PostgresStorage::open(&url).unwrap()) as Arc<dyn Storage>)
        .collect();
    contract::concurrent_handles(&handles, 2, 10);
}

/// Connect through the component: the tokens and the status are in
/// PostgreSQL, and the gate serves the token.
#[test]
fn postgres_connect_stores_the_grant() {
    let Some((_server, storage, fixture, backends)) = on_postgres("postgres_connect") else {
        return;
    };
    let mut instance = component(&backends);
    lifecycle::connected(&fixture, &mut instance);
    assert_eq!(
        lifecycle::access(&instance.access_token(CONNECTION).unwrap()),
        "token:AT-1"
    );
    assert_eq!(
        instance.status(CONNECTION).unwrap().unwrap().state,
        State::Connected
    );
    for key in ["config/c1", "tokens/c1", "status/c1"] {
        assert!(storage.get(key).unwrap().is_some(), "{key}");
    }
}

/// At expiry, one refresh with rotation; the rotated tokens are stored and
/// served by another instance without a second refresh.
#[test]
fn postgres_expiry_refreshes_with_rotation() {
    let Some((_server, storage, fixture, backends)) = on_postgres("postgres_expiry_refreshes")
    else {
        return;
    };
    let mut a = component(&backends);
    lifecycle::connected(&fixture, &mut a);
    fixture.clock.advance(HOUR);
    fixture.http.push(Ok(token_json(
        200,
        r#"{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}"#,
    )));
    assert_eq!(
        lifecycle::access(&a.access_token(CONNECTION).unwrap()),
        "token:AT-2"
    );
    let mut b = component(&backends);
    assert_eq!(
        lifecycle::access(&b.access_token(CONNECTION).unwrap()),
        "token:AT-2"
    );
    let sent = fixture.http.sent();
    assert_eq!(sent.len(), 2, "the code exchange and one refresh");
    assert_eq!(
        String::from_utf8_lossy(&sent[1].body),
        "grant_type=refresh_token&refresh_token=RT-1"
    );
    let tokens = storage.get("tokens/c1").unwrap().unwrap();
    assert!(String::from_utf8_lossy(&tokens.value).contains("RT-2"));
}

/// `invalid_grant` to a refresh: re-authenticate, tokens gone, the
/// configuration kept.
#[test]
fn postgres_invalid_grant_keeps_the_configuration() {
    let Some((_server, _storage, fixture, backends)) = on_postgres("postgres_invalid_grant") else {
        return;
    };
    lifecycle::dead_refresh_token_keeps_the_configuration(&fixture, &mut component(&backends));
}

/// Sixteen threads, each with its own instance, on one PostgreSQL store, at
/// expiry: exactly one refresh request.
#[test]
fn postgres_sixteen_threads_at_expiry_send_one_refresh() {
    let Some((_server, _storage, fixture, backends)) = on_postgres("postgres_sixteen_threads")
    else {
        return;
    };
    lifecycle::sixteen_threads_at_expiry(&fixture, &backends);
}

/// Every scenario of `tests/vectors/lifecycle.json` (rotation, invalid_grant,
/// client errors, every transient cause, 401 streaks, crashed lease
/// holders and skewed clocks, storage failing during a rotation, lost
/// rotations), natively and through the component, each in a fresh
/// schema of one PostgreSQL database, with the storage faults injected over
/// it: the verdicts are the vectors' own. A schema rather than a database
/// per run: a database copies its template's catalogs (some 8 MB, and as
/// much again in WAL), which over the 114 runs took more than a gigabyte
/// of disk; a schema is two small tables.
#[test]
fn postgres_runs_every_lifecycle_vector() {
    let Some(server) = TestServer::shared("postgres_runs_every_lifecycle_vector") else {
        return;
    };
    let url = server.fresh_database();
    let runs = std::sync::atomic::AtomicU32::new(0);
    let fresh = || {
        let run = runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let options = PostgresOptions {
            schema: Some(format!("run_{run}")),
            ..PostgresOptions::default()
        };
        let store = PostgresStorage::open_with(&url, options).expect("open");
        Fixture::over(Arc::new(store))
    };
    let suite = load::<LifecycleCase>("lifecycle.json");
    let count = check_all(&suite, |case| {
        let native = fresh();
        let got = lifecycle::run(case, &native, &mut Native(&native))
            .map_err(|e| format!("native: {e}"))?;
        expect_eq(&got, &case.expect).map_err(|e| format!("native: {e}"))?;
        let wasm = fresh();
        let got = lifecycle::run(case, &wasm, &mut component(&wasm.backends))
            .map_err(|e| format!("component: {e}"))?;
        expect_eq(&got, &case.expect).map_err(|e| format!("component: {e}"))
    });
    assert!(count >= 25, "{count} scenarios");
}
