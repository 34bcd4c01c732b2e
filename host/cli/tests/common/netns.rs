//! Network namespaces joined by veth pairs: each worker of the multi-host
//! test runs in a namespace of its own, as on a machine of its own, and
//! reaches the database over its veth link. Made with `ip netns`, which
//! needs root; [`available`] says whether this machine allows it.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

/// Whether namespaces can be made here (root, and `ip netns` works).
pub fn available() -> bool {
    let probe = format!("pleo-probe-{}", std::process::id());
    let made = ip(&["netns", "add", &probe]).is_ok();
    if made {
        let _ = ip(&["netns", "del", &probe]);
    }
    made
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// One namespace, linked to the test's own namespace by a veth pair:
/// `host_ip` on the test's side, `ns_ip` inside. Deleted on drop (which
/// deletes the pair too).
pub struct Netns {
    pub name: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// Namespace `index` (0 to 250) of this test process: the subnet
    /// 10.`(200 + pid % 50)`.`index`.0/24, so concurrent test runs on one
    /// machine do not collide.
    pub fn create(index: u8) -> Result<Netns, String> {
        let pid = std::process::id();
        let name = format!("pleo-{pid}-{index}");
        // Interface names are at most 15 bytes.
        let host_side = format!("pv{}h{index}", pid % 100_000);
        let ns_side = format!("pv{}n{index}", pid % 100_000);
        let net = 200 + (pid % 50) as u8;
        let host_ip = Ipv4Addr::new(10, net, index, 1);
        let ns_ip = Ipv4Addr::new(10, net, index, 2);
        ip(&["netns", "add", &name])?;
        let netns = Netns {
            name,
            host_ip,
            ns_ip,
        };
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link", "add", &host_side, "type", "veth", "peer", "name", &ns_side,
        ])?;
        ip(&["link", "set", &ns_side, "netns", &netns.name])?;
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_side])?;
        ip(&["link", "set", &host_side, "up"])?;
        inside(&["addr", "add", &format!("{ns_ip}/24"), "dev", &ns_side])?;
        inside(&["link", "set", &ns_side, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// A listener on this namespace's own 127.0.0.1:`port`, bound from a
    /// thread that entered the namespace; the socket stays in it, whoever
    /// serves it afterwards.
    pub fn bind_loopback(&self, port: u16) -> std::io::Result<TcpListener> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path)?;
            // SAFETY: setns on this thread only, with a namespace file we
            // hold open; the thread ends right after binding.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        })
        .join()
        .expect("the binding thread")
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
