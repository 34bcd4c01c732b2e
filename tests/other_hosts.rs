//! The Node.js and Python hosts (`host/node`, `host/python`) run their own
//! test suites here, so that `cargo test --workspace` tests every host: each
//! suite runs every vector file through that host's step loop and an
//! end-to-end lifecycle against the mock Pleo server over real HTTP.
//!
//! This file gives them what they need and nothing else: the component
//! (written from the bytes the Rust host embeds, so all three hosts test the
//! same build), the vector folder, and a mock server with a confidential
//! client. It installs their pinned dependencies (`npm ci`, a virtualenv
//! from `requirements.lock`) into the target folder, once per lock file.
//! A missing Node.js or Python is a loud `SKIPPED` line, and a failure
//! under `CI=true`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use pleo_oauth::imports::clock::SystemClock;
use pleo_oauth::mock::{Consent, MockConfig, MockServer};

/// The client the hosts' end-to-end tests connect as.
const CLIENT_ID: &str = "other-host-client";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// Reports a host that cannot run here; under `CI=true` that is a failure.
fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; under CI=true this is a failure, not a skip");
    }
    // Straight to stderr: `eprintln!` is captured by the test harness.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {test}: {why} ***\n");
}

/// The component the Rust host embeds, as a file named by its digest (so a
/// transpiled copy keyed on the path stays valid until the component
/// changes).
fn component_file() -> PathBuf {
    let path = scratch().join(format!(
        "pleo-oauth-{}.wasm",
        &pleo_oauth::COMPONENT_SHA256[..16]
    ));
    if std::fs::read(&path).ok().as_deref() != Some(pleo_oauth::COMPONENT) {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, pleo_oauth::COMPONENT).unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    path
}

/// A mock Pleo on loopback with a confidential client, and the environment
/// that tells a host's tests where it is.
fn mock() -> (MockServer, Vec<(&'static str, String)>) {
    let secret = format!("other-host-secret-{:016x}", rand_u64());
    let mut config = MockConfig::new(Arc::new(SystemClock));
    config.client_id = CLIENT_ID.into();
    config.client_secret = Some(secret.clone());
    config.consent = Consent::Auto;
    let server = MockServer::start(config).expect("the mock server starts");
    let env = vec![
        (
            "PLEO_OAUTH_COMPONENT",
            component_file().display().to_string(),
        ),
        (
            "PLEO_OAUTH_VECTORS",
            root().join("tests/vectors").display().to_string(),
        ),
        ("PLEO_OAUTH_MOCK_URL", server.base_url()),
        ("PLEO_OAUTH_MOCK_CLIENT_ID", CLIENT_ID.into()),
        ("PLEO_OAUTH_MOCK_CLIENT_SECRET", secret),
    ];
    (server, env)
}

fn rand_u64() -> u64 {
    let mut bytes = [0; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

/// The first line of `program --version`, or `None` when it does not run.
fn version(program: &str, flag: &str) -> Option<String> {
    let out = Command::new(program).arg(flag).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Runs a command to completion, failing the test with its output when it
/// fails; prints its output either way (shown with `--nocapture` and on
/// failure).
fn run(what: &str, command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {what} ---\n{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    out
}

/// Whether `marker` records this exact lock file (so an install is reused
/// until the lock changes).
fn installed(marker: &Path, lock: &Path) -> bool {
    let lock = std::fs::read(lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    std::fs::read(marker).is_ok_and(|m| m == lock)
}

fn record_install(marker: &Path, lock: &Path) {
    std::fs::copy(lock, marker).unwrap();
}

#[test]
fn node_host_passes_every_vector_and_the_end_to_end_lifecycle() {
    let test = "node_host_passes_every_vector_and_the_end_to_end_lifecycle";
    let Some(node) = version("node", "--version") else {
        return skip(test, "Node.js (`node`) is not installed");
    };
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return skip(
            test,
            &format!("Node.js 20 or later is needed, found {node}"),
        );
    }
    if version("npm", "--version").is_none() {
        return skip(test, "npm is not installed");
    }
    let package = root().join("host/node");
    let lock = package.join("package-lock.json");
    let marker = package.join("node_modules/.pleo-oauth-installed");
    if !installed(&marker, &lock) {
        run(
            "npm ci",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&package),
        );
        record_install(&marker, &lock);
    }
    let (_mock, env) = mock();
    run(
        "npm test (host/node)",
        Command::new("npm")
            .arg("test")
            .current_dir(&package)
            .envs(env),
    );
}

#[test]
fn python_host_passes_every_vector_and_the_end_to_end_lifecycle() {
    let test = "python_host_passes_every_vector_and_the_end_to_end_lifecycle";
    let Some(python) = version("python3", "--version") else {
        return skip(test, "Python 3 (`python3`) is not installed");
    };
    let minor: u32 = python
        .trim_start_matches("Python 3.")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if !python.starts_with("Python 3.") || minor < 10 {
        return skip(
            test,
            &format!("Python 3.10 or later is needed, found {python}"),
        );
    }
    let package = root().join("host/python");
    let lock = package.join("requirements.lock");
    let venv = scratch().join("python-venv");
    let marker = venv.join(".pleo-oauth-installed");
    if !installed(&marker, &lock) {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            "python3 -m venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        );
        run(
            "pip install -r host/python/requirements.lock",
            Command::new(venv.join("bin/pip"))
                .args(["install", "--disable-pip-version-check", "-r"])
                .arg(&lock),
        );
        record_install(&marker, &lock);
    }
    let (_mock, env) = mock();
    run(
        "pytest (host/python)",
        Command::new(venv.join("bin/python"))
            .args(["-m", "pytest", "-q", "tests"])
            .current_dir(&package)
            .envs(env),
    );
}
