//! What the end-to-end, browser and multi-host tests share: a free
//! loopback port, the compiled-component cache, a browser that consents,
//! reading the authorisation URL that `pleo-oauth connect` prints, and
//! network namespaces.

#![allow(dead_code)] // each test crate uses its own part

pub mod netns;

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The compiled-code cache every process of the tests shares.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The browser: follows an authorisation URL to the mock (which consents
/// at once) and returns where it redirects.
pub fn follow(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let response = agent.get(url).call().unwrap();
    assert_eq!(response.status().as_u16(), 302);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads `connect`'s stdout up to the authorisation URL it prints; the
/// lines read so far are appended to `printed`.
pub fn authorization_url(stdout: &mut impl BufRead, printed: &mut String) -> String {
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no URL in:\n{printed}"
        );
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("http") {
            return format!("http{url}");
        }
    }
}
