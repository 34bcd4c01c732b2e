//! The storage contract of `wit/imports.wit` (interface `storage`) as a
//! test suite that any backend runs: memory, SQLite, sealed and namespaced
//! stores here, and any store a platform writes. Each check panics with
//! the rule it found broken.
//!
//! ```
//! use pleo_oauth::imports::storage::{MemoryStorage, contract};
//! contract::check(&MemoryStorage::default());
//! ```
//!
//! The checks write keys under `contract-check/` only, and clean up what
//! they wrote, so they may run against a store that holds other data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Entry, Storage, StorageError};

const ROOT: &str = "contract-check/";

/// A fresh key prefix per check, so checks can share a store and run twice.
fn scope(name: &str) -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{ROOT}{name}/{nanos:x}-{run}/")
}

/// Every single-handle rule, in turn.
pub fn check(store: &dyn Storage) {
    compare_and_swap(store);
    versions_never_reused(store);
    keys_page_in_byte_order(store);
    values_are_opaque_bytes(store);
}

/// `put` with `none` creates only; `put` and `delete` succeed only at the
/// current version; a failed write changes nothing; versions increase.
pub fn compare_and_swap(store: &dyn Storage) {
    let key = format!("{}k", scope("cas"));
    let key = key.as_str();
    assert_eq!(
        store.get(key),
        Ok(None),
        "a key never written reads as none"
    );
    let v1 = store.put(key, b"a", None).expect("create");
    assert_eq!(
        store.put(key, b"b", None),
        Err(StorageError::Conflict),
        "put with no expected version must not overwrite an existing key"
    );
    assert_eq!(
        store.put(key, b"b", Some(v1.wrapping_add(1))),
        Err(StorageError::Conflict),
        "put at a version the key does not have is a conflict"
    );
    assert_eq!(
        store.get(key).unwrap(),
        Some(Entry {
            value: b"a".to_vec(),
            version: v1
        }),
        "a conflicting put writes nothing"
    );
    let v2 = store
        .put(key, b"b", Some(v1))
        .expect("update at the current version");
    assert!(
        v2 > v1,
        "a write's version is greater than the one it replaced"
    );
    assert_eq!(
        store.delete(key, v1),
        Err(StorageError::Conflict),
        "delete at a stale version"
    );
    assert!(
        store.get(key).unwrap().is_some(),
        "a conflicting delete deletes nothing"
    );
    store
        .delete(key, v2)
        .expect("delete at the current version");
    assert_eq!(store.get(key), Ok(None), "deleted");
    assert_eq!(
        store.delete(key, v2),
        Err(StorageError::Conflict),
        "deleting a missing key"
    );
    assert_eq!(
        store.put(key, b"c", Some(v2)),
        Err(StorageError::Conflict),
        "put at a version of a deleted key"
    );
}

/// A key's versions only increase, also across deletes: a writer holding
/// a version of a deleted key never matches the recreated key (no ABA),
/// however many times it is recreated.
pub fn versions_never_reused(store: &dyn Storage) {
    let scope = scope("reuse");
    let key = format!("{scope}k");
    let other = format!("{scope}other");
    let mut seen = Vec::new();
    for round in 0..5 {
        let created = store.put(&key, b"x", None).expect("create");
        // Writes to other keys in between must not let a version come back.
        let o = store.put(&other, b"o", None).expect("create other");
        store.delete(&other, o).expect("delete other");
        assert!(
            seen.iter().all(|&v| created > v),
            "round {round}: version {created} of a recreated key is not above every earlier one {seen:?}"
        );
        for stale in &seen {
            assert_eq!(
                store.put(&key, b"stale", Some(*stale)),
                Err(StorageError::Conflict),
                "round {round}: a stale version {stale} matched the recreated key"
            );
        }
        let updated = store.put(&key, b"y", Some(created)).expect("update");
        seen.extend([created, updated]);
        store.delete(&key, updated).expect("delete");
    }
}

/// `keys` lists one prefix in ascending byte order, pages with `after` and
/// `limit`, and ends with an empty page.
pub fn keys_page_in_byte_order(store: &dyn Storage) {
    let scope = scope("keys");
    let names = ["a", "a/b", "aa", "b", "B", "z~", "é"];
    let mut written = Vec::new();
    for name in names {
        let key = format!("{scope}{name}");
        let version = store.put(&key, name.as_bytes(), None).expect("write");
        written.push((key, version));
    }
    // A key just outside the prefix must not be listed.
    let outside = scope.trim_end_matches('/').to_owned();
    let outside_version = store.put(&outside, b"-", None).expect("write outside");
    let mut expected: Vec<String> = names.iter().map(|n| format!("{scope}{n}")).collect();
    expected.sort();
    assert_eq!(
        store.keys(&scope, None, 100).expect("keys"),
        expected,
        "every key of the prefix, in byte order, and nothing else"
    );
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.keys(&scope, after.as_deref(), 3).expect("page");
        assert!(page.len() <= 3, "a page holds at most `limit` keys");
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        after = Some(last);
    }
    assert_eq!(paged, expected, "paging with `after` visits every key once");
    assert_eq!(
        store
            .keys(&scope, Some(""), 100)
            .expect("after before the prefix"),
        expected,
        "an `after` before the prefix starts at the prefix"
    );
    for (key, version) in written {
        store.delete(&key, version).expect("clean up");
    }
    store.delete(&outside, outside_version).expect("clean up");
    assert!(
        store.keys(&scope, None, 100).expect("keys").is_empty(),
        "deleted keys are not listed"
    );
}

/// Values come back byte for byte, whatever they hold.
pub fn values_are_opaque_bytes(store: &dyn Storage) {
    let key = format!("{}v", scope("bytes"));
    let value: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let version = store.put(&key, &value, None).expect("write");
    assert_eq!(store.get(&key).unwrap().map(|e| e.value), Some(value));
    let big = vec![b'x'; 64 * 1024];
    let version = store
        .put(&key, &big, Some(version))
        .expect("a 64 KiB value");
    assert_eq!(
        store.get(&key).unwrap().map(|e| e.value.len()),
        Some(big.len())
    );
    store.delete(&key, version).expect("clean up");
}

/// Several handles on one store (connections, processes' views), hammering
/// one key by compare-and-swap from `threads` threads: every successful
/// write is seen by the others, so no increment is lost, and no two writes
/// got the same version.
pub fn concurrent_handles(
    handles: &[Arc<dyn Storage>],
    threads_per_handle: usize,
    increments: u64,
) {
    let key = format!("{}counter", scope("concurrent"));
    handles[0]
        .put(&key, b"0", None)
        .expect("create the counter");
    let versions = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for handle in handles {
            for _ in 0..threads_per_handle {
                let (key, versions) = (&key, &versions);
                s.spawn(move || {
                    let mut done = 0;
                    while done < increments {
                        let entry = handle.get(key).expect("read").expect("the counter exists");
                        let n: u64 = std::str::from_utf8(&entry.value).unwrap().parse().unwrap();
                        match handle.put(key, (n + 1).to_string().as_bytes(), Some(entry.version)) {
                            Ok(version) => {
                                versions.lock().unwrap().push(version);
                                done += 1;
                            }
                            Err(StorageError::Conflict) => {}
                            Err(e) => panic!("a contended write failed with {e:?}, not a conflict"),
                        }
                    }
                });
            }
        }
    });
    let total = handles.len() as u64 * threads_per_handle as u64 * increments;
    let entry = handles[0].get(&key).unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&entry.value).unwrap(),
        total.to_string(),
        "every successful compare-and-swap counted once: none lost"
    );
    let mut versions = versions.into_inner().unwrap();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len() as u64,
        total,
        "no two writes got the same version"
    );
    handles[0].delete(&key, entry.version).expect("clean up");
}
