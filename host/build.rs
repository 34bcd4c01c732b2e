//! Builds the guest for `wasm32-unknown-unknown` and encodes it as the
//! pleo-oauth component, so `cargo build`, `cargo test` and `cargo run` need
//! no separate step (the pattern of wasmtime's test-programs artifacts).
//!
//! What it writes: the component and its digest under `OUT_DIR`, and the
//! guest's own build under `<cargo's target folder>/guest`, nowhere else.
//! The guest is built by a nested cargo, which cannot share the outer
//! build's target folder (cargo holds its lock for the whole build), and
//! building it under each `OUT_DIR` would compile it once per host profile
//! and feature set (dev, test, release, bench, clippy: a minute each on two
//! cores). A sibling folder of cargo's own, found from `OUT_DIR`, is built
//! once and shared, and goes away with `cargo clean`. The guest is a member
//! of this workspace, so reading its sources to rebuild it is reading this
//! package's inputs.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let host_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = host_dir
        .parent()
        .expect("the host crate sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for input in [
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }

    ensure_wasm_target();
    let module = build_guest(&root, &cargo_target_dir(&out_dir).join("guest"));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("encoding the guest as a component failed: {e:?}"));
    let path = out_dir.join("pleo_oauth.wasm");
    std::fs::write(&path, &component).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!(
        "cargo:rustc-env=PLEO_OAUTH_COMPONENT_PATH={}",
        path.display()
    );
    let digest: String = Sha256::digest(&component)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=PLEO_OAUTH_COMPONENT_SHA256={digest}");
}

/// Cargo's target folder: the nearest ancestor of `OUT_DIR` that cargo
/// tagged with `CACHEDIR.TAG`, whatever `--target-dir`, `CARGO_TARGET_DIR`
/// or `build.target-dir` chose. `OUT_DIR` itself when none is (a layout
/// cargo may change), at the price of a guest build per profile.
fn cargo_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .to_path_buf()
}

/// Builds the guest crate with the `guest` profile in `target_dir`.
fn build_guest(root: &Path, target_dir: &Path) -> Vec<u8> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--package",
            "pleo-oauth-core",
            "--profile",
            "guest",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // The outer build's flags and wrappers (clippy, coverage) are for the
        // host, not the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("running cargo to build the guest");
    if !output.status.success() {
        panic!(
            "building the guest failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let module = target_dir
        .join(TARGET)
        .join("guest")
        .join("pleo_oauth_core.wasm");
    std::fs::read(&module).unwrap_or_else(|e| panic!("reading {}: {e}", module.display()))
}

/// Installs the wasm target with rustup when it is missing, or stops with
/// the exact command to run.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(has_std) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let installed = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !libdir.as_deref().is_some_and(has_std) {
        panic!(
            "the {TARGET} target is missing and could not be installed; run: rustup target add {TARGET}"
        );
    }
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}
