//! A namespace inside a shared store: several deployments (production and
//! staging, two tenants of a platform) can share one database without
//! seeing each other's connections. The guest never sees the prefix.

use std::sync::Arc;

use super::{Entry, Storage, StorageError};

/// Prefixes every key with `{namespace}/` on the way in and strips it on
/// the way out.
pub struct Namespaced {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl Namespaced {
    /// A namespace: 1 to 64 characters of `A-Z a-z 0-9 - _ .`, so that it
    /// can never contain the `/` that ends it, and one namespace is never a
    /// prefix of another's keys.
    pub fn new(inner: Arc<dyn Storage>, namespace: &str) -> Result<Self, InvalidNamespace> {
        let valid = (1..=64).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(InvalidNamespace);
        }
        Ok(Self {
            inner,
            prefix: format!("{namespace}/"),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// A namespace that is empty, too long, or not `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a storage namespace is 1 to 64 characters of A-Z a-z 0-9 - _ .")]
pub struct InvalidNamespace;

impl Storage for Namespaced {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.inner.get(&self.key(key))
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        self.inner.put(&self.key(key), value, expected)
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.inner.delete(&self.key(key), expected)
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        let after = after.map(|a| self.key(a));
        let keys = self
            .inner
            .keys(&self.key(prefix), after.as_deref(), limit)?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }
}
