//! Single flight under adversarial interleaving: several workers share one
//! store and one strict authorisation server that rotates the refresh token
//! on every refresh and revokes the whole grant when a rotated-away token
//! comes back (as Pleo does). A deterministic scheduler, seeded, decides
//! which worker's next effect runs, moves true time, gives every worker its
//! own clock offset within the skew bound, and pauses workers: briefly
//! anywhere, and for up to two minutes before a lease is renewed.
//!
//! Each worker runs on a thread, but only the one the scheduler picks runs
//! at a time, so a seed replays exactly. The invariant checked, over many
//! seeds: no refresh token is ever presented twice, the grant never dies,
//! and no worker is told to re-authenticate.

use crate::effects::drive;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::config::tests::config;
use super::lease::{MAX_CLOCK_SKEW_MS, MAX_PAUSE_MS, REFRESH_TIMEOUT_MS};
use super::{Refusal, access_token, configure};
use crate::io::Io;
use crate::io::fake::FakeIo;
use crate::types::{Entry, Event, Header, Request, Response, StorageError, TransportError};

const START: u64 = 1_700_000_000_000;
/// Access tokens live two minutes, so the runs cross many expiries.
const ACCESS_TTL_S: u64 = 120;

/// The authorisation server's view of the one grant.
#[derive(Default)]
struct Server {
    live: String,
    rotated_away: BTreeSet<String>,
    presented: Vec<String>,
    reused: Vec<String>,
    revoked: bool,
    issued: u64,
}

impl Server {
    fn token(&mut self, request: &Request) -> Response {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let presented = ::url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.presented.push(presented.clone());
        if self.revoked {
            return error("invalid_grant");
        }
        if presented == self.live {
            self.issued += 1;
            let fresh = format!("RT-{}", self.issued);
            self.rotated_away
                .insert(std::mem::replace(&mut self.live, fresh.clone()));
            let body = format!(
                r#"{{"access_token":"AT-{}","token_type":"Bearer","expires_in":{ACCESS_TTL_S},"refresh_token":"{fresh}"}}"#,
                self.issued
            );
            return Response {
                status: 200,
                headers: vec![Header::new("Content-Type", "application/json")],
                body: body.into_bytes(),
            };
        }
        if self.rotated_away.contains(&presented) {
            // Reuse detection: the whole grant dies.
            self.reused.push(presented);
            self.revoked = true;
        }
        error("invalid_grant")
    }
}

fn error(code: &str) -> Response {
    Response {
        status: 400,
        headers: vec![Header::new("Content-Type", "application/json")],
        body: format!(r#"{{"error":"{code}"}}"#).into_bytes(),
    }
}

/// What the workers share, guarded by the scheduler's lock.
struct World {
    /// The shared store: the core tests' in-memory compare-and-swap store.
    store: FakeIo,
    server: Server,
    /// True time (Unix ms).
    time: u64,
    /// The worker whose effect runs now.
    turn: Option<usize>,
    /// Workers blocked at their next effect, and when each may run.
    waiting: BTreeMap<usize, u64>,
    done: Vec<bool>,
    /// The scheduler's own choices. Each worker draws its stalls from its
    /// own generator, so the order in which threads first arrive does not
    /// change a seed's run.
    rng: Rng,
    refusals: Vec<(usize, Refusal)>,
    served: usize,
    /// What ran, in order, for a failing seed's message.
    trace: Vec<String>,
}

/// splitmix64: small, seedable, good enough to schedule.
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

struct Scheduler {
    world: Mutex<World>,
    changed: Condvar,
}

/// The kinds of effect, for choosing how long a worker may stall before it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A compare-and-swap on the lease: a worker may stall for minutes
    /// before it (it is descheduled before its lease is renewed).
    LeaseWrite,
    Other,
}

/// One worker's `Io`: every effect waits for the scheduler's turn.
struct Worker {
    id: usize,
    /// This worker's clock minus true time.
    offset: u64,
    scheduler: Arc<Scheduler>,
    /// Time this worker owes before its next effect (a response in flight,
    /// a sleep).
    carry: u64,
    rng: Rng,
}

impl Worker {
    fn effect<R: std::fmt::Debug>(
        &mut self,
        effect: Effect,
        what: &str,
        run: impl FnOnce(&mut World) -> R,
    ) -> R {
        let scheduler = Arc::clone(&self.scheduler);
        let mut world = scheduler.world.lock().unwrap();
        let stall = match self.rng.below(100) {
            // A long stall: before a lease write, where the lease's
            // compare-and-swap and the clock reads around it catch it.
            0..=9 if effect == Effect::LeaseWrite => self.rng.below(120_000),
            // A short stall: the pauses inside a refresh add up to less
            // than the pause bound (at most 5 effects, 5 s each).
            10..=12 => self.rng.below(MAX_PAUSE_MS / 6),
            _ => self.rng.below(50),
        };
        let ready = world.time + std::mem::take(&mut self.carry) + stall;
        world.waiting.insert(self.id, ready);
        scheduler.changed.notify_all();
        world = wait_for(&scheduler, world, |w| w.turn == Some(self.id));
        world.waiting.remove(&self.id);
        let result = run(&mut world);
        let line = format!(
            "t+{:>7} w{} (clock +{:>5}) {what} -> {result:?}",
            world.time - START,
            self.id,
            self.offset
        );
        world.trace.push(line);
        world.turn = None;
        scheduler.changed.notify_all();
        result
    }

    fn now(world: &World, offset: u64) -> u64 {
        world.time + offset
    }

    fn finish(&mut self) {
        let mut world = self.scheduler.world.lock().unwrap();
        world.done[self.id] = true;
        self.scheduler.changed.notify_all();
    }
}

fn wait_for<'a>(
    scheduler: &'a Scheduler,
    mut world: MutexGuard<'a, World>,
    ready: impl Fn(&World) -> bool,
) -> MutexGuard<'a, World> {
    while !ready(&world) {
        world = scheduler.changed.wait(world).unwrap();
    }
    world
}

impl Io for Worker {
    fn get(&mut self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.effect(Effect::Other, &format!("get {key}"), |w| {
            w.store.get(key).map(|found| found.map(Shown))
        })
        .map(|found| found.map(|shown| shown.0))
    }

    fn put(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        let effect = if key.starts_with("lease/") {
            Effect::LeaseWrite
        } else {
            Effect::Other
        };
        let what = format!("put {key} {expected:?} {}", String::from_utf8_lossy(value));
        self.effect(effect, &what, |w| w.store.put(key, value, expected))
    }

    fn delete(&mut self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.effect(Effect::Other, &format!("delete {key} {expected}"), |w| {
            w.store.delete(key, expected)
        })
    }

    fn keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.effect(Effect::Other, &format!("keys {prefix}"), |w| {
            w.store.keys(prefix, after, limit)
        })
    }

    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        let what = format!("send {}", String::from_utf8_lossy(&request.body));
        // Mostly quick; sometimes slow, never past the timeout.
        let latency = match self.rng.below(10) {
            0..=2 => self.rng.below(u64::from(REFRESH_TIMEOUT_MS)),
            _ => self.rng.below(500),
        };
        let (response, latency) = self.effect(Effect::Other, &what, |w| {
            (ResponseText(w.server.token(&request)), latency)
        });
        let response = response.0;
        self.carry += latency;
        Ok(response)
    }

    fn random(&mut self, buf: &mut [u8]) {
        for byte in buf.iter_mut() {
            *byte = self.rng.next() as u8;
        }
    }

    fn emit(&mut self, _event: Event) {}

    fn now_ms(&mut self) -> u64 {
        let offset = self.offset;
        self.effect(Effect::Other, "now", |w| Self::now(w, offset))
    }

    fn sleep_ms(&mut self, ms: u32) {
        self.carry += u64::from(ms);
    }
}

/// A stored entry as the trace shows it: its version and its text.
struct Shown(Entry);

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v{} {}",
            self.0.version,
            String::from_utf8_lossy(&self.0.value)
        )
    }
}

/// A response as the trace shows it.
struct ResponseText(Response);

impl std::fmt::Debug for ResponseText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.0.status,
            String::from_utf8_lossy(&self.0.body)
        )
    }
}

/// Runs `workers` workers for `calls` gate calls each under one seed.
fn run(seed: u64, workers: usize, calls: usize) -> World {
    let mut world = World {
        store: FakeIo::default(),
        server: Server {
            live: "RT-0".into(),
            ..Server::default()
        },
        time: START,
        turn: None,
        waiting: BTreeMap::new(),
        done: vec![false; workers],
        rng: Rng(seed),
        refusals: Vec::new(),
        served: 0,
        trace: Vec::new(),
    };
    seed_connection(&mut world);
    let offsets: Vec<u64> = (0..workers)
        .map(|i| match i {
            // The extremes of the bound, then anything within it.
            0 => 0,
            1 => MAX_CLOCK_SKEW_MS,
            _ => world.rng.below(MAX_CLOCK_SKEW_MS + 1),
        })
        .collect();
    let scheduler = Arc::new(Scheduler {
        world: Mutex::new(world),
        changed: Condvar::new(),
    });
    let threads: Vec<_> = offsets
        .into_iter()
        .enumerate()
        .map(|(id, offset)| {
            let scheduler = Arc::clone(&scheduler);
            std::thread::spawn(move || {
                let mut io = Worker {
                    id,
                    offset,
                    scheduler,
                    carry: 0,
                    rng: Rng(seed ^ (id as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03)),
                };
                for _ in 0..calls {
                    let now = io.now_ms();
                    let result = access_token(&mut io, now, "c1");
                    {
                        let mut world = io.scheduler.world.lock().unwrap();
                        match result {
                            Ok(_) => world.served += 1,
                            Err(refusal) => world.refusals.push((id, refusal)),
                        }
                    }
                    // Think time between API calls: up to 20 s.
                    io.carry += io.rng.below(20_000);
                }
                io.finish();
            })
        })
        .collect();
    schedule(&scheduler, workers);
    for thread in threads {
        thread.join().expect("a worker panicked");
    }
    Arc::try_unwrap(scheduler)
        .ok()
        .expect("workers are done")
        .world
        .into_inner()
        .unwrap()
}

/// Picks, again and again, one of the workers that may run, moving true
/// time forward when none may yet.
fn schedule(scheduler: &Scheduler, workers: usize) {
    let mut world = scheduler.world.lock().unwrap();
    loop {
        world = wait_for(scheduler, world, |w| {
            w.turn.is_none() && (0..workers).all(|i| w.done[i] || w.waiting.contains_key(&i))
        });
        if world.done.iter().all(|&d| d) {
            return;
        }
        let earliest = *world.waiting.values().min().expect("someone waits");
        world.time = world.time.max(earliest);
        let now = world.time;
        let ready: Vec<usize> = world
            .waiting
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        let pick = ready[world.rng.below(ready.len() as u64) as usize];
        world.turn = Some(pick);
        scheduler.changed.notify_all();
    }
}

/// The connection as an authorisation left it: AT-0 / RT-0, due soon.
fn seed_connection(world: &mut World) {
    let mut io = FakeIo {
        clock: START,
        ..Default::default()
    };
    configure(&mut io, "c1", &config()).unwrap();
    let tokens = super::store::TokensRecord {
        access_token: crate::secret::Secret::new("AT-0").into(),
        refresh_token: Some(crate::secret::Secret::new("RT-0").into()),
        expires_at_ms: Some(START + ACCESS_TTL_S * 1000),
        scopes: vec!["users:read".into()],
        obtained_at_ms: START,
        after_unauthorized: false,
        unconfirmed: false,
        grant: None,
        refused: false,
    };
    drive(&mut io, async |fx| {
        super::store::write(fx, "tokens/c1", &tokens, None).await
    })
    .unwrap();
    world.store = io;
}

/// The invariant, over many seeds: five workers (two at the extremes of
/// the skew bound), short stalls anywhere within the pause bound, and long
/// stalls (up to two minutes) before one lease write in ten: between a
/// clock reading and the compare-and-swap that uses it.
#[test]
fn at_most_one_refresh_per_refresh_token_under_skew_and_pauses() {
    let mut refreshes = 0;
    let mut served = 0;
    for seed in 0..150 {
        let world = run(seed, 5, 24);
        let server = &world.server;
        let mut seen = BTreeSet::new();
        let twice: Vec<_> = server
            .presented
            .iter()
            .filter(|t| !seen.insert(*t))
            .collect();
        assert!(
            twice.is_empty(),
            "seed {seed}: presented twice: {twice:?}\n{}",
            world.trace.join("\n")
        );
        assert!(server.reused.is_empty() && !server.revoked, "seed {seed}");
        assert!(
            world
                .refusals
                .iter()
                .all(|(_, r)| matches!(r, Refusal::Wait { .. })),
            "seed {seed}: {:?}",
            world.refusals
        );
        assert!(server.issued >= 1, "seed {seed}: the run crossed an expiry");
        refreshes += server.issued;
        served += world.served;
    }
    // The run is meaningful: tokens were served and refreshed throughout.
    assert!(served > 150 * 5 * 24 / 2, "{served} served");
    assert!(refreshes > 150 * 2, "{refreshes} refreshes");
}
