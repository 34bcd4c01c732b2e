//! `PostgresStorage` against a real server (a throwaway cluster from
//! [`super::testing`]), and the pieces that need none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::testing::TestServer;
use super::*;
use crate::imports::storage::contract;

#[test]
fn postgres_storage_keeps_the_contract() {
    let Some(server) = TestServer::shared("postgres_storage_keeps_the_contract") else {
        return;
    };
    let store = PostgresStorage::open(&server.fresh_database()).unwrap();
    contract::check(&store);
}

/// Four handles, each its own pool (as four processes would have), two
/// threads each, one counter by compare-and-swap: no lost increment, no
/// version twice.
#[test]
fn postgres_handles_on_one_database_keep_the_contract_together() {
    let Some(server) = TestServer::shared("postgres_handles_on_one_database") else {
        return;
    };
    let url = server.fresh_database();
    let handles: Vec<Arc<dyn Storage>> = (0..4)
        .map(|_| Arc::new(PostgresStorage::open(&url).unwrap()) as Arc<dyn Storage>)
        .collect();
    contract::concurrent_handles(&handles, 2, 25);
}

/// Versions come from one sequence: never reused across a delete, from
/// another handle, or for another key.
#[test]
fn postgres_versions_never_reused_across_a_delete() {
    let Some(server) = TestServer::shared("postgres_versions_never_reused") else {
        return;
    };
    let url = server.fresh_database();
    let a = PostgresStorage::open(&url).unwrap();
    contract::versions_never_reused(&a);
    let v1 = a.put("tokens/c1", b"one", None).unwrap();
    a.delete("tokens/c1", v1).unwrap();
    let b = PostgresStorage::open(&url).unwrap();
    let v2 = b.put("tokens/c1", b"two", None).unwrap();
    assert!(v2 > v1, "a recreated key gets a new version");
    assert_eq!(
        a.put("tokens/c1", b"stale", Some(v1)),
        Err(StorageError::Conflict)
    );
    let other = b.put("tokens/c2", b"x", None).unwrap();
    assert!(other != v1 && other != v2, "one sequence for every key");
}

/// The session of a write is ended by the server (`pg_terminate_backend`)
/// while the write waits on a row lock held by another transaction: the
/// client cannot know whether it committed, so `outcome-unknown`; a
/// re-read on a fresh connection settles it.
#[test]
fn a_write_whose_session_is_terminated_is_outcome_unknown() {
    let Some(server) = TestServer::shared("a_write_whose_session_is_terminated") else {
        return;
    };
    let url = server.fresh_database();
    let store = PostgresStorage::open(&url).unwrap();
    let v = store.put("tokens/c1", b"old", None).unwrap();
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let mut locker = server.client(database);
    let mut lock = locker.transaction().unwrap();
    lock.execute(
        "SELECT 1 FROM pleo_oauth_entries WHERE key = $1 FOR UPDATE",
        &[&b"tokens/c1".as_slice()],
    )
    .unwrap();
    let result = std::thread::scope(|s| {
        let writer = s.spawn(|| store.put("tokens/c1", b"new", Some(v)));
        let mut admin = server.client(database);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let terminated = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = 'pleo-oauth' AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap();
            if !terminated.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the write never waited on the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.join().unwrap()
    });
    lock.rollback().unwrap();
    match result {
        Err(StorageError::OutcomeUnknown(why)) => {
            assert!(!why.contains("new") && !why.contains("old"), "{why}");
        }
        other => panic!("expected outcome-unknown, got {other:?}"),
    }
    let entry = store.get("tokens/c1").unwrap().unwrap();
    assert_eq!(
        (entry.value.as_slice(), entry.version),
        (b"old".as_slice(), v)
    );
    assert!(
        store.put("tokens/c1", b"next", Some(v)).is_ok(),
        "the store recovers"
    );
}

/// A write stuck behind a lock ends at `statement_timeout`, rolled back:
/// `unavailable`, in bounded time.
#[test]
fn a_stuck_write_ends_at_the_statement_timeout_as_unavailable() {
    let Some(server) = TestServer::shared("a_stuck_write_ends_at_the_statement_timeout") else {
        return;
    };
    let url = server.fresh_database();
    let store = PostgresStorage::open_with(
        &url,
        PostgresOptions {
            statement_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .unwrap();
    let v = store.put("k", b"a", None).unwrap();
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let mut locker = server.client(database);
    let mut lock = locker.transaction().unwrap();
    lock.execute(
        "SELECT 1 FROM pleo_oauth_entries WHERE key = $1 FOR UPDATE",
        &[&b"k".as_slice()],
    )
    .unwrap();
    let started = Instant::now();
    let result = store.put("k", b"b", Some(v));
    assert!(
        matches!(&result, Err(StorageError::Unavailable(why)) if why.contains("57014")),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    lock.rollback().unwrap();
    assert_eq!(
        store.get("k").unwrap().unwrap().version,
        v,
        "nothing written"
    );
}

/// A server that is down: every operation is `unavailable` (nothing was
/// sent), never `outcome-unknown`, within the connect timeout; when it is
/// back, the same handle works again.
#[test]
fn a_stopped_server_is_unavailable_until_it_is_back() {
    let Some(server) = TestServer::start_or_skip("a_stopped_server_is_unavailable") else {
        return;
    };
    let url = server.fresh_database();
    let store = PostgresStorage::open(&url).unwrap();
    let v = store.put("k", b"a", None).unwrap();
    server.stop();
    let started = Instant::now();
    assert!(matches!(store.get("k"), Err(StorageError::Unavailable(_))));
    assert!(matches!(
        store.put("k", b"b", Some(v)),
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        store.delete("k", v),
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        store.keys("", None, 10),
        Err(StorageError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    server.start();
    assert_eq!(store.get("k").unwrap().unwrap().version, v);
    assert!(store.put("k", b"b", Some(v)).is_ok());
}

/// Schemas: workers opening at once migrate once; a named schema holds
/// its own tables; a schema from a newer release is refused.
#[test]
fn the_schema_is_created_once_under_concurrency_and_a_newer_one_is_refused() {
    let Some(server) = TestServer::shared("the_schema_is_created_once") else {
        return;
    };
    let url = server.fresh_database();
    let options = || PostgresOptions {
        schema: Some("tenant_a".into()),
        ..Default::default()
    };
    let stores: Vec<PostgresStorage> = std::thread::scope(|s| {
        let opening: Vec<_> = (0..6)
            .map(|_| s.spawn(|| PostgresStorage::open_with(&url, options())))
            .collect();
        opening
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let v = stores[0].put("k", b"a", None).unwrap();
    assert_eq!(stores[5].get("k").unwrap().unwrap().version, v);
    let plain = PostgresStorage::open(&url).unwrap();
    assert_eq!(plain.get("k"), Ok(None), "another schema, other tables");
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let mut admin = server.client(database);
    let version: i32 = admin
        .query_one("SELECT version FROM tenant_a.pleo_oauth_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
    admin
        .execute(
            "UPDATE tenant_a.pleo_oauth_schema SET version = version + 1",
            &[],
        )
        .unwrap();
    match PostgresStorage::open_with(&url, options()) {
        Err(PostgresOpenError::NewerSchema { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        PostgresStorage::open_with(
            &url,
            PostgresOptions {
                schema: Some("Robert'); DROP".into()),
                ..Default::default()
            }
        ),
        Err(PostgresOpenError::Schema(_))
    ));
}

/// An unreachable server fails `open` quickly, and no error text holds
/// the password.
#[test]
fn an_unreachable_server_fails_open_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = PostgresStorage::open(&format!(
        "postgresql://user:hunter2-secret@127.0.0.1:{port}/db?sslmode=disable"
    ))
    .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}/db")), "{text}");
}

#[test]
fn a_prefix_ends_where_its_keys_end_in_byte_order() {
    assert_eq!(prefix_end(b"tokens/"), Some(b"tokens0".to_vec()));
    assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff"), None);
    assert_eq!(prefix_end(b""), None);
}

#[test]
fn libpq_parameters_postgres_does_not_read_are_translated() {
    let (url, root) = libpq_compat(
        "postgres://db.internal/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3",
    );
    assert_eq!(
        url,
        "postgres://db.internal/app?sslmode=require&connect_timeout=3"
    );
    assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(libpq_compat("postgres://h/db").0, "postgres://h/db");
    assert!(valid_schema("tenant_a1") && !valid_schema("1a") && !valid_schema("a-b"));
}
