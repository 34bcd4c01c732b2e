//! A throwaway PostgreSQL cluster for tests, here and in other crates:
//! `initdb` in a fresh temporary folder, `pg_ctl start` on a free loopback
//! port (trust authentication, no TLS, no fsync, a short write-ahead
//! log), stopped and removed on drop. Run as root (as CI is), the server
//! runs as the `postgres` user through `runuser`, since PostgreSQL refuses
//! to run as root.
//!
//! Without PostgreSQL installed, [`TestServer::start_or_skip`] prints a
//! loud `SKIPPED:` line and gives `None`, except under `CI=true`, where a
//! missing PostgreSQL fails the test.
//!
//! ```no_run
//! use pleo_oauth::imports::storage::{PostgresStorage, contract, postgres_testing::TestServer};
//! let Some(server) = TestServer::shared("my_test") else { return };
//! let store = PostgresStorage::open(&server.fresh_database()).unwrap();
//! contract::check(&store);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Where the PostgreSQL server programs are, when they are installed:
/// `$PLEO_OAUTH_PG_BIN`, `pg_config --bindir`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian), or `initdb` on the `PATH`.
pub fn find_binaries() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PLEO_OAUTH_PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has(&dir) {
            return Some(dir);
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has(dir))
}

/// A running throwaway cluster.
pub struct TestServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The user the server runs as, when this process is root.
    run_as: Option<String>,
    /// `listen_addresses`: loopback, or every address after
    /// [`TestServer::allow_network`].
    listen: std::sync::Mutex<&'static str>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The uid and gid of a user, by `id`.
fn ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl TestServer {
    /// Starts a cluster; `None` after a `SKIPPED:` line on stderr when
    /// PostgreSQL is not installed (a panic under `CI=true`). `test` names
    /// the skipped test.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let Some(bin) = find_binaries() else {
            let why = "PostgreSQL is not installed (no initdb and pg_ctl: set PLEO_OAUTH_PG_BIN, or apt-get install postgresql)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {why}; under CI=true this is a failure, not a skip");
            }
            // Straight to stderr, not `eprintln!`, which the test harness
            // captures and hides for a passing test.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {test}: {why} ***\n");
            return None;
        };
        Some(Self::start_in(bin))
    }

    /// One cluster shared by the tests of a process that run at the same
    /// time (each should use [`TestServer::fresh_database`]); stopped when
    /// the last of them drops it.
    pub fn shared(test: &str) -> Option<Arc<Self>> {
        static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = shared.upgrade() {
            return Some(server);
        }
        let server = Arc::new(Self::start_or_skip(test)?);
        *shared = Arc::downgrade(&server);
        Some(server)
    }

    fn start_in(bin: PathBuf) -> Self {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "pleo-oauth-pg-{}-{}-{nanos:x}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary folder for PostgreSQL");
        let run_as = if is_root() {
            // PostgreSQL refuses to run as root: run it as `postgres`,
            // which Debian's package creates, owning the folder.
            let user = "postgres";
            let (uid, gid) = ids(user).unwrap_or_else(|| {
                panic!("running as root, and there is no `{user}` user to run PostgreSQL as")
            });
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the test folder");
            Some(user.to_owned())
        } else {
            None
        };
        let mut server = Self {
            bin,
            dir,
            port: 0,
            run_as,
            listen: std::sync::Mutex::new("127.0.0.1"),
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("a UTF-8 temporary path"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        );
        // A free port may be taken between finding and binding it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("pg_ctl start failed five times: {last}");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn try_start(&self) -> Result<(), String> {
        // Small on disk as well as fast: no fsync, and the write-ahead log
        // kept to a few segments (`wal_level=minimal`, checkpoints every
        // 64 MB of it), since each `CREATE DATABASE` logs a copy of its
        // template and the default keeps a gigabyte of log.
        let options = format!(
            "-p {} -k {} -c listen_addresses='{}' -c fsync=off -c max_connections=200 \
             -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=64MB -c min_wal_size=32MB",
            self.port,
            self.dir.display(),
            self.listen.lock().unwrap_or_else(|p| p.into_inner())
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            Err(format!(
                "{}{}{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Starts a stopped server again, on the same port.
    /// Lets clients from `cidr` in (trust, without TLS, as the loopback
    /// ones) and restarts the server listening on every address: for tests
    /// whose clients run in other network namespaces.
    pub fn allow_network(&self, cidr: &str) {
        use std::io::Write as _;
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("pg_hba.conf"))
            .expect("pg_hba.conf");
        writeln!(hba, "host all all {cidr} trust").expect("write pg_hba.conf");
        *self.listen.lock().unwrap_or_else(|p| p.into_inner()) = "*";
        self.stop();
        self.start();
    }

    pub fn start(&self) {
        self.try_start()
            .unwrap_or_else(|why| panic!("pg_ctl start failed: {why}"));
    }

    /// Stops the server at once (`-m immediate`: as a crash would).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` as the superuser, without TLS.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// A superuser connection to `database`, for tests that reach behind
    /// a store's back.
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(database), postgres::NoTls)
            .expect("connect to the test server")
    }

    /// Creates a new empty database and gives its URL.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("test_{}", N.fetch_add(1, Ordering::Relaxed));
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        self.url(&name)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
