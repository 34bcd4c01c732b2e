//! Many hosts, one database: `pleo-oauth keep-fresh` workers, each in a
//! network namespace of its own (as on a machine of its own, joined to the
//! database's namespace by a veth link) with its own clock offset within
//! the documented skew bound, share one PostgreSQL database and keep
//! hundreds of connections fresh against the strict mock (rotation on
//! every refresh, reuse detection revoking the grant).
//!
//! Workers are stopped at random and restarted (SIGTERM, as an orchestrator
//! stops them: a worker finishes the gate call it is in), and once the
//! whole fleet crashes (SIGKILL) while refreshes are in flight, which
//! orphans their leases: those connections wait for the leases to lapse
//! (at most 65 s + the 30 s skew allowance), then refresh. The strict server
//! counts: no reuse detection, no grant lost, and between two refreshes of
//! one connection at least the time one expiry takes. Bounded: 200
//! connections, 4 workers, 175 s.
//!
//! Without network namespaces (not root) the same test runs the workers as
//! plain processes, and says so.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::netns::{self, Netns};
use common::{cache_dir, follow};
use pleo_oauth::authorize::BeginOptions;
use pleo_oauth::connections::{ClientType, ConnectionConfig, CustomEndpoints, Environment, State};
use pleo_oauth::imports::clock::{Clock, OffsetClock};
use pleo_oauth::imports::http::{ClientAuthMethod, ClientSecrets, HttpClient, HttpLimits};
use pleo_oauth::imports::log::CollectingLog;
use pleo_oauth::imports::random::OsRandom;
use pleo_oauth::imports::storage::postgres_testing::TestServer;
use pleo_oauth::imports::storage::{
    KeyRing, PostgresStorage, SealedStorage, SealingKey, Storage, all_keys,
};
use pleo_oauth::mock::{Consent, Fault, MockConfig, MockServer};
use pleo_oauth::secret::Secret;
use pleo_oauth::{Backends, Runtime, RuntimeConfig};

const BIN: &str = env!("CARGO_BIN_EXE_pleo-oauth");
const SECRET: &str = "multi-host-client-secret-0123";
const CLIENT: &str = "multi-host-client";
const WORKERS: u8 = 4;
const CONNECTIONS: usize = 200;
/// Long enough that the workers' clocks, 30 s apart at most, agree on when
/// a token is due (its margin is 60 s, half its life).
const ACCESS_TTL_SECS: u32 = 120;
/// Each worker's clock: pairwise at most 30 s apart, the documented bound.
const OFFSETS_MS: [i64; WORKERS as usize] = [-15_000, -5_000, 5_000, 15_000];
const RUN: Duration = Duration::from_secs(175);
/// When the server starts holding token requests, after the start: just
/// before the first tokens are due (at 45 s by the clock 15 s ahead), so
/// that the fleet crashes with refreshes in flight.
const CRASH_AT: Duration = Duration::from_secs(38);
/// The shortest time between two refreshes of one connection that is still
/// one refresh per expiry: due at 60 s of age by the reader's clock, minus
/// the 30 s two clocks may differ, minus slack for a slow round.
const MIN_GAP_MS: u64 = 25_000;

/// A deterministic choice of who is stopped when: the seed is printed, so a
/// failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One worker: where it runs, its clock, and its process.
struct Worker {
    netns: Option<Netns>,
    db_url: String,
    offset_ms: i64,
    child: Option<Child>,
    /// Sums over the rounds it printed: gate calls, tokens served, refusals
    /// that would need the user or an operator.
    calls: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
}

impl Worker {
    fn start(&mut self, key: &str, mock_url: &str) {
        let mut command = match &self.netns {
            Some(netns) => netns.command(BIN),
            None => Command::new(BIN),
        };
        command
            .args(["keep-fresh", "--interval-ms", "1000"])
            .env("PLEO_OAUTH_DB", &self.db_url)
            .env("PLEO_OAUTH_KEY", key)
            .env("PLEO_OAUTH_CLIENT_SECRET", SECRET)
            .env("PLEO_OAUTH_SECRET_ORIGINS", mock_url)
            .env("PLEO_OAUTH_CLOCK_OFFSET_MS", self.offset_ms.to_string())
            .env("PLEO_OAUTH_CACHE_DIR", cache_dir())
            .env("PLEO_OAUTH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start a worker");
        let stdout = child.stdout.take().expect("piped");
        let (calls, served, bad) = (self.calls.clone(), self.served.clone(), self.bad.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(round) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let n = |k: &str| round[k].as_u64().unwrap_or(0);
                calls.fetch_add(n("connections"), Ordering::Relaxed);
                served.fetch_add(n("served"), Ordering::Relaxed);
                bad.fetch_add(
                    n("reauthenticate") + n("client-error") + n("not-connected"),
                    Ordering::Relaxed,
                );
            }
        });
        self.child = Some(child);
    }

    /// SIGTERM (a graceful stop) or SIGKILL (a crash), and wait for the end.
    fn stop(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL);
    }
}

fn config(mock: &MockServer) -> ConnectionConfig {
    let base = mock.base_url();
    ConnectionConfig {
        environment: Environment::Custom(CustomEndpoints {
            authorize_url: format!("{base}/oauth/authorize"),
            token_url: format!("{base}/oauth/token"),
        }),
        client_id: CLIENT.into(),
        client_type: ClientType::Confidential,
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        scopes: vec!["users:read".into()],
        issuer: Some(mock.issuer()),
        require_iss: true,
        settings: vec![],
        revocation_url: None,
        refresh_margin_seconds: None,
        max_backoff_seconds: None,
        stall_after_seconds: None,
    }
}

/// Connects every connection through the library, as a platform's web tier
/// would: configure, begin, the user consents, complete.
fn connect_all(mock: &MockServer, storage: Arc<dyn Storage>) {
    let mut secrets = ClientSecrets::new(ClientAuthMethod::Basic);
    secrets
        .insert(CLIENT, Secret::new(SECRET), [mock.base_url().as_str()])
        .unwrap();
    let backends = Backends {
        http: Arc::new(HttpClient::new(HttpLimits::default(), secrets)),
        storage,
        clock: Arc::new(OffsetClock::new(0)),
        random: Arc::new(OsRandom),
        log: Arc::new(CollectingLog::default()),
    };
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut instance = runtime.instance(backends).unwrap();
    let config = config(mock);
    for n in 0..CONNECTIONS {
        let id = format!("c{n:03}");
        instance.configure(&id, &config).unwrap().unwrap();
        let authorization = instance
            .begin(&id, &BeginOptions::default())
            .unwrap()
            .unwrap();
        let callback = follow(authorization.url.expose());
        instance.complete(&callback, Some(&id)).unwrap().unwrap();
    }
}

#[test]
fn many_hosts_one_postgres_database_refresh_once_per_expiry() {
    let test = "many_hosts_one_postgres_database_refresh_once_per_expiry";
    let Some(server) = TestServer::start_or_skip(test) else {
        return;
    };
    let isolated = netns::available();
    if !isolated {
        eprintln!(
            "\n*** {test}: network namespaces are not available here (not root, or no `ip netns`): the workers run as plain processes on this host ***\n"
        );
    }
    let spaces: Vec<Option<Netns>> = (0..WORKERS)
        .map(|i| isolated.then(|| Netns::create(i + 1).expect("a namespace")))
        .collect();
    if isolated {
        server.allow_network("10.0.0.0/8");
    }
    let database = server.fresh_database();

    // One strict mock, reachable in every namespace at its own loopback
    // address and the same port.
    let port = common::free_port();
    let mut mock_config = MockConfig::new(Arc::new(OffsetClock::new(0)));
    mock_config.client_id = CLIENT.into();
    mock_config.client_secret = Some(SECRET.into());
    mock_config.consent = Consent::Auto;
    mock_config.access_ttl_secs = ACCESS_TTL_SECS;
    mock_config.port = port;
    let extra = spaces
        .iter()
        .flatten()
        .map(|netns| {
            netns
                .bind_loopback(port)
                .expect("a listener in the namespace")
        })
        .collect();
    let mock = MockServer::start_with(mock_config, extra).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&database).unwrap());
    // Tokens sealed at rest, as the workers keep them.
    let (sealing_key, key) = SealingKey::generate();
    let sealed: Arc<dyn Storage> = Arc::new(SealedStorage::new(
        storage.clone(),
        KeyRing::new(sealing_key),
    ));
    let connecting = Instant::now();
    connect_all(&mock, sealed.clone());
    eprintln!(
        "{test}: {CONNECTIONS} connections connected in {:?}",
        connecting.elapsed()
    );

    let mock_url = mock.base_url();
    let mut workers: Vec<Worker> = spaces
        .into_iter()
        .zip(OFFSETS_MS)
        .map(|(netns, offset_ms)| Worker {
            db_url: match &netns {
                Some(netns) => database.replace("127.0.0.1", &netns.host_ip.to_string()),
                None => database.clone(),
            },
            netns,
            offset_ms,
            child: None,
            calls: Arc::default(),
            served: Arc::default(),
            bad: Arc::default(),
        })
        .collect();
    for worker in &mut workers {
        worker.start(&key, &mock_url);
    }

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("{test}: seed {seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut crashed: Option<(u64, Vec<String>)> = None;
    let mut restarts = 0;
    while started.elapsed() < RUN {
        let pause = Duration::from_millis(2_000 + rng.below(6_000));
        let crash = crashed.is_none() && started.elapsed() + pause >= CRASH_AT;
        std::thread::sleep(if crash {
            CRASH_AT.saturating_sub(started.elapsed())
        } else {
            pause
        });
        if crash {
            // The fleet crashes while refreshes are in flight. The server
            // holds every token request for a minute before it looks at it,
            // so none is processed when the workers die (a rotation that
            // only a dead process saw would be lost by any client); their
            // leases are left behind.
            let held = mock.control().stats().faults_served;
            mock.control().inject(Fault::TokenDelay(60_000), 100_000);
            let waiting = Instant::now();
            while mock.control().stats().faults_served < held + 3
                && waiting.elapsed() < Duration::from_secs(25)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            for worker in &mut workers {
                worker.stop(libc::SIGKILL);
            }
            let at = OffsetClock::new(0).now_ms();
            mock.control().clear_faults();
            let orphaned: Vec<String> = all_keys(storage.as_ref(), "lease/")
                .unwrap()
                .into_iter()
                .map(|k| k.trim_start_matches("lease/").to_owned())
                .collect();
            eprintln!(
                "{test}: the fleet crashed; {} lease(s) orphaned",
                orphaned.len()
            );
            crashed = Some((at, orphaned));
            for worker in &mut workers {
                worker.start(&key, &mock_url);
            }
        } else {
            let i = rng.below(u64::from(WORKERS)) as usize;
            workers[i].stop(libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(500 + rng.below(1_500)));
            workers[i].start(&key, &mock_url);
            restarts += 1;
        }
    }
    for worker in &mut workers {
        worker.stop(libc::SIGTERM);
    }
    let elapsed = started.elapsed().as_secs_f64();

    let stats = mock.control().stats();
    let grants = mock.control().grants();
    assert_eq!(stats.reuse_detections, 0, "a refresh token was sent twice");
    assert_eq!(grants.len(), CONNECTIONS, "one grant per connection");
    assert!(grants.iter().all(|g| g.active), "a grant was lost");
    let mut min_gap = u64::MAX;
    for (n, grant) in grants.iter().enumerate() {
        assert!(
            !grant.refreshed_at_ms.is_empty(),
            "c{n:03} was never refreshed"
        );
        for pair in grant.refreshed_at_ms.windows(2) {
            let gap = pair[1] - pair[0];
            min_gap = min_gap.min(gap);
            assert!(
                gap >= MIN_GAP_MS,
                "c{n:03} refreshed twice within {gap} ms: more than once per expiry"
            );
        }
    }
    let bad: u64 = workers.iter().map(|w| w.bad.load(Ordering::Relaxed)).sum();
    assert_eq!(
        bad, 0,
        "a worker saw a connection needing the user or an operator"
    );

    // The orphaned leases lapsed and their connections refreshed again.
    let (crash_at, orphaned) = crashed.expect("the crash happened");
    assert!(
        !orphaned.is_empty(),
        "the crash caught no refresh in flight"
    );
    let mut waited = Vec::new();
    for id in &orphaned {
        let n: usize = id.trim_start_matches('c').parse().unwrap();
        let next = grants[n]
            .refreshed_at_ms
            .iter()
            .find(|&&at| at > crash_at)
            .unwrap_or_else(|| panic!("{id} never refreshed after its lease was orphaned"));
        waited.push(next - crash_at);
    }
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut instance = runtime
        .instance(Backends {
            storage: sealed,
            ..Backends::default()
        })
        .unwrap();
    let page = instance.list(None, 1000).unwrap().unwrap();
    assert_eq!(page.connections.len(), CONNECTIONS);
    for summary in &page.connections {
        assert!(
            matches!(summary.state, State::Connected),
            "{} is {:?}",
            summary.connection,
            summary.state
        );
    }

    let calls: u64 = workers
        .iter()
        .map(|w| w.calls.load(Ordering::Relaxed))
        .sum();
    let served: u64 = workers
        .iter()
        .map(|w| w.served.load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "{test}: {} workers ({}), {CONNECTIONS} connections, {elapsed:.0} s, {restarts} graceful restarts and one fleet crash: {:.0} token calls/s ({served} served), {:.1} refreshes/s ({} in all), shortest gap between two refreshes of one connection {:.1} s, {} orphaned lease(s), their connections waited {}",
        WORKERS,
        if isolated {
            "each in its own network namespace"
        } else {
            "plain processes"
        },
        calls as f64 / elapsed,
        stats.refreshes as f64 / elapsed,
        stats.refreshes,
        min_gap as f64 / 1000.0,
        orphaned.len(),
        match (waited.iter().min(), waited.iter().max()) {
            (Some(min), Some(max)) => format!(
                "{:.1} to {:.1} s",
                *min as f64 / 1000.0,
                *max as f64 / 1000.0
            ),
            _ => "(none was orphaned)".to_owned(),
        }
    );
}
