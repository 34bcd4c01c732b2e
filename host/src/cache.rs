//! The compiled-component cache.
//!
//! Compiling the component with Cranelift takes a while; loading compiled
//! code takes a millisecond. The cache file is named by a SHA-256 of the
//! component's own SHA-256 and of the engine's compatibility hash, so a new
//! component, a new wasmtime or a different engine configuration never loads
//! stale code. The embedded component's digest is computed at build time
//! ([`crate::COMPONENT_SHA256`]): hashing 640 KB on every process start cost
//! a tenth of a start-up.
//!
//! Loading compiled code trusts the file, as wasmtime's own cache does: keep
//! the cache folder writable by its user only.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where the compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from the cache folder.
    Hit,
    /// Compiled, and written to the cache folder.
    Stored,
    /// Compiled; the cache is off or could not be written.
    Compiled,
}

/// The default cache folder: `$PLEO_OAUTH_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/pleo-oauth`, else `~/.cache/pleo-oauth`.
pub fn default_dir() -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("PLEO_OAUTH_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("pleo-oauth")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/pleo-oauth")))
}

/// The SHA-256 of a component, in lower-case hex: what names its cache file.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache file for the component with this [`digest`] compiled by
/// `engine`.
pub fn file_for(dir: &Path, engine: &Engine, component_digest: &str) -> PathBuf {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0 // only the digest is read
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    hasher.write(component_digest.as_bytes());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let digest = hasher.0.finalize();
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("pleo-oauth-{name}.cwasm"))
}

/// Loads the compiled component from `dir`, or compiles it and stores it.
/// `component_digest` is the [`digest`] of `bytes`.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    component_digest: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheStatus)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, CacheStatus::Compiled));
    };
    let file = file_for(dir, engine, component_digest);
    if file.exists() {
        // SAFETY: the file was written by `store` below for this exact
        // component and engine configuration (the name says so); wasmtime
        // also checks its header and version. A file that fails to load is
        // recompiled and replaced.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &file) } {
            return Ok((component, CacheStatus::Hit));
        }
    }
    let component = Component::new(engine, bytes)?;
    let status = match store(&component, dir, &file) {
        Ok(()) => CacheStatus::Stored,
        Err(_) => CacheStatus::Compiled,
    };
    Ok((component, status))
}

/// Writes atomically: a temporary file renamed into place, so concurrent
/// processes never read half a file.
fn store(component: &Component, dir: &Path, file: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let temp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, file)
}
