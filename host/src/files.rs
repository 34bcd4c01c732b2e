//! Files that hold secrets (the token database, the sealing key): created
//! readable by their owner only, in folders only their owner can enter,
//! under the user's standard folders (XDG base directories).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Creates `path`'s folder, and any missing parents, as 0700.
pub fn private_parent(path: &Path) -> std::io::Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(parent)
}

/// Options that create a new file (never an existing one) as 0600.
pub fn new_private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Whether an existing file is readable or writable by others.
pub fn too_open(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

/// `$VAR/pleo-oauth/<name>` for an XDG base directory variable, else
/// `~/<home_fallback>/pleo-oauth/<name>`, else `./<name>`.
pub fn user_path(var: &str, home_fallback: &str, name: &str) -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env(var)
        .or_else(|| env("HOME").map(|home| home.join(home_fallback)))
        .map(|dir| dir.join("pleo-oauth").join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}
