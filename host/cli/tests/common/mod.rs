//! What the end-to-end and browser tests share: a free loopback port, and
//! reading the authorisation URL that `pleo-oauth connect` prints.

use std::io::BufRead;

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
