//! The effects an operation needs from the outside world, as data.
//!
//! Every lifecycle operation is written once, as an `async fn` over
//! [`Effects`]: where it needs storage, the network, randomness or the
//! clock it awaits the matching method, which puts an [`Effect`] in the
//! channel and suspends until a driver has put the matching
//! [`EffectResult`] back. Two drivers run the same futures:
//!
//! - [`drive`] performs each effect at once through the synchronous [`Io`]
//!   trait (the component's imports, or the tests' fakes): the
//!   import-based exports;
//! - [`crate::steps::Operation`] hands each effect out to the host and
//!   resumes when the host hands the result back: the `steps` export.
//!
//! There is no waker and no runtime: an operation is polled only when its
//! effect's result has arrived, so a no-op waker suffices. Emitting an event
//! does not suspend: events are buffered, and both drivers pass them on
//! before the next effect and before the outcome, so their order with
//! respect to every other effect is kept.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use crate::io::Io;
use crate::types::{Entry, Event, Request, Response, StorageError, TransportError};

/// What an operation needs done: one case per import function, with its
/// arguments (`wit/steps.wit`, `effect`). `Debug` hides stored values and
/// request bodies (the `Request` and `Entry` types already do), which hold
/// tokens, verifiers and codes.
#[derive(Clone, PartialEq, Eq)]
pub enum Effect {
    /// `storage.get(key)`.
    StorageGet(String),
    /// `storage.put(key, value, expected-version)`.
    StoragePut {
        key: String,
        value: Vec<u8>,
        expected: Option<u64>,
    },
    /// `storage.delete(key, expected-version)`.
    StorageDelete { key: String, expected: u64 },
    /// `storage.keys(prefix, after, limit)`.
    StorageKeys {
        prefix: String,
        after: Option<String>,
        limit: u32,
    },
    /// `http.send(request)`.
    HttpSend(Request),
    /// `random.bytes(len)`.
    RandomBytes(u32),
    /// `clock.now-ms()`.
    NowMs,
    /// `clock.sleep-ms(ms)`.
    SleepMs(u32),
    /// `log.emit(event)`.
    Emit(Event),
}

/// The result of an effect, in the case of the same name.
#[derive(Clone, PartialEq, Eq)]
pub enum EffectResult {
    StorageGet(Result<Option<Entry>, StorageError>),
    StoragePut(Result<u64, StorageError>),
    StorageDelete(Result<(), StorageError>),
    StorageKeys(Result<Vec<String>, StorageError>),
    HttpSend(Result<Response, TransportError>),
    /// Exactly the number of bytes asked for.
    RandomBytes(Vec<u8>),
    NowMs(u64),
    SleepMs,
    Emit,
}

/// The case of an effect or of a result, to tell whether a result answers
/// the outstanding effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectKind {
    StorageGet,
    StoragePut,
    StorageDelete,
    StorageKeys,
    HttpSend,
    RandomBytes,
    NowMs,
    SleepMs,
    Emit,
}

impl Effect {
    pub fn kind(&self) -> EffectKind {
        match self {
            Self::StorageGet(_) => EffectKind::StorageGet,
            Self::StoragePut { .. } => EffectKind::StoragePut,
            Self::StorageDelete { .. } => EffectKind::StorageDelete,
            Self::StorageKeys { .. } => EffectKind::StorageKeys,
            Self::HttpSend(_) => EffectKind::HttpSend,
            Self::RandomBytes(_) => EffectKind::RandomBytes,
            Self::NowMs => EffectKind::NowMs,
            Self::SleepMs(_) => EffectKind::SleepMs,
            Self::Emit(_) => EffectKind::Emit,
        }
    }
}

impl EffectResult {
    pub fn kind(&self) -> EffectKind {
        match self {
            Self::StorageGet(_) => EffectKind::StorageGet,
            Self::StoragePut(_) => EffectKind::StoragePut,
            Self::StorageDelete(_) => EffectKind::StorageDelete,
            Self::StorageKeys(_) => EffectKind::StorageKeys,
            Self::HttpSend(_) => EffectKind::HttpSend,
            Self::RandomBytes(_) => EffectKind::RandomBytes,
            Self::NowMs(_) => EffectKind::NowMs,
            Self::SleepMs => EffectKind::SleepMs,
            Self::Emit => EffectKind::Emit,
        }
    }
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StorageGet(key) => f.debug_tuple("StorageGet").field(key).finish(),
            // The value is a stored record: tokens, a verifier.
            Self::StoragePut {
                key,
                value,
                expected,
            } => f
                .debug_struct("StoragePut")
                .field("key", key)
                .field("value", &format_args!("<{} bytes>", value.len()))
                .field("expected", expected)
                .finish(),
            Self::StorageDelete { key, expected } => f
                .debug_struct("StorageDelete")
                .field("key", key)
                .field("expected", expected)
                .finish(),
            Self::StorageKeys {
                prefix,
                after,
                limit,
            } => f
                .debug_struct("StorageKeys")
                .field("prefix", prefix)
                .field("after", after)
                .field("limit", limit)
                .finish(),
            Self::HttpSend(request) => f.debug_tuple("HttpSend").field(request).finish(),
            Self::RandomBytes(len) => f.debug_tuple("RandomBytes").field(len).finish(),
            Self::NowMs => f.write_str("NowMs"),
            Self::SleepMs(ms) => f.debug_tuple("SleepMs").field(ms).finish(),
            Self::Emit(event) => f.debug_tuple("Emit").field(event).finish(),
        }
    }
}

impl fmt::Debug for EffectResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StorageGet(r) => f.debug_tuple("StorageGet").field(r).finish(),
            Self::StoragePut(r) => f.debug_tuple("StoragePut").field(r).finish(),
            Self::StorageDelete(r) => f.debug_tuple("StorageDelete").field(r).finish(),
            Self::StorageKeys(r) => f.debug_tuple("StorageKeys").field(r).finish(),
            Self::HttpSend(r) => f.debug_tuple("HttpSend").field(r).finish(),
            // Random bytes become states and verifiers.
            Self::RandomBytes(bytes) => f
                .debug_tuple("RandomBytes")
                .field(&format_args!("<{} bytes>", bytes.len()))
                .finish(),
            Self::NowMs(ms) => f.debug_tuple("NowMs").field(ms).finish(),
            Self::SleepMs => f.write_str("SleepMs"),
            Self::Emit => f.write_str("Emit"),
        }
    }
}

/// Where the effect an operation waits on, and then its result, sit.
#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Wanted(Effect),
    Answered(EffectResult),
}

/// The channel between one running operation and its driver.
#[derive(Default)]
pub struct Effects {
    slot: RefCell<Slot>,
    events: RefCell<Vec<Event>>,
}

/// A future that asks for one effect and resolves to its result.
struct Perform<'a> {
    fx: &'a Effects,
    effect: Option<Effect>,
}

impl Future for Perform<'_> {
    type Output = EffectResult;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<EffectResult> {
        let fx = self.fx;
        let mut slot = fx.slot.borrow_mut();
        if let Some(effect) = self.effect.take() {
            *slot = Slot::Wanted(effect);
            return Poll::Pending;
        }
        match std::mem::take(&mut *slot) {
            Slot::Answered(result) => Poll::Ready(result),
            other => {
                *slot = other;
                Poll::Pending
            }
        }
    }
}

/// A driver answered an effect with a result of another case: drivers
/// check the case first, so this is a bug in the core.
fn mismatched(result: EffectResult) -> ! {
    unreachable!("a driver answered with a result of another case: {result:?}")
}

impl Effects {
    async fn perform(&self, effect: Effect) -> EffectResult {
        Perform {
            fx: self,
            effect: Some(effect),
        }
        .await
    }

    /// `storage.get`.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        match self.perform(Effect::StorageGet(key.to_owned())).await {
            EffectResult::StorageGet(result) => result,
            other => mismatched(other),
        }
    }

    /// `storage.put`: writes when the key is at `expected` (absent for `None`).
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StorageError> {
        let effect = Effect::StoragePut {
            key: key.to_owned(),
            value,
            expected,
        };
        match self.perform(effect).await {
            EffectResult::StoragePut(result) => result,
            other => mismatched(other),
        }
    }

    /// `storage.delete`: deletes when the key is at `expected`.
    pub async fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        let effect = Effect::StorageDelete {
            key: key.to_owned(),
            expected,
        };
        match self.perform(effect).await {
            EffectResult::StorageDelete(result) => result,
            other => mismatched(other),
        }
    }

    /// `storage.keys`.
    pub async fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        let effect = Effect::StorageKeys {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        };
        match self.perform(effect).await {
            EffectResult::StorageKeys(result) => result,
            other => mismatched(other),
        }
    }

    /// `http.send`.
    pub async fn send(&self, request: Request) -> Result<Response, TransportError> {
        match self.perform(Effect::HttpSend(request)).await {
            EffectResult::HttpSend(result) => result,
            other => mismatched(other),
        }
    }

    /// `random.bytes`: fills `buf`. A host that hands back fewer bytes
    /// than asked for breaks the contract; the rest stay zero, which the
    /// core never relies on being random, so a short answer is refused.
    pub async fn random(&self, buf: &mut [u8]) {
        let len = u32::try_from(buf.len()).expect("a small buffer");
        match self.perform(Effect::RandomBytes(len)).await {
            EffectResult::RandomBytes(bytes) => {
                assert_eq!(bytes.len(), buf.len(), "random-bytes: wrong length");
                buf.copy_from_slice(&bytes);
            }
            other => mismatched(other),
        }
    }

    /// `clock.now-ms`.
    pub async fn now_ms(&self) -> u64 {
        match self.perform(Effect::NowMs).await {
            EffectResult::NowMs(ms) => ms,
            other => mismatched(other),
        }
    }

    /// `clock.sleep-ms`.
    pub async fn sleep_ms(&self, ms: u32) {
        match self.perform(Effect::SleepMs(ms)).await {
            EffectResult::SleepMs => {}
            other => mismatched(other),
        }
    }

    /// `log.emit`: buffered, without suspending; the driver passes it on
    /// before the next effect.
    pub fn emit(&self, event: Event) {
        self.events.borrow_mut().push(event);
    }

    /// The events emitted since the last call, in order.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// Whether events wait to be passed on (saves an allocation per poll).
    pub(crate) fn has_events(&self) -> bool {
        !self.events.borrow().is_empty()
    }

    /// The effect the suspended operation waits on.
    pub(crate) fn take_wanted(&self) -> Option<Effect> {
        let mut slot = self.slot.borrow_mut();
        match std::mem::take(&mut *slot) {
            Slot::Wanted(effect) => Some(effect),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Hands the result of the effect taken with [`Self::take_wanted`] back.
    pub(crate) fn answer(&self, result: EffectResult) {
        *self.slot.borrow_mut() = Slot::Answered(result);
    }
}

/// Performs one effect through the synchronous `Io`.
pub fn perform(io: &mut dyn Io, effect: Effect) -> EffectResult {
    match effect {
        Effect::StorageGet(key) => EffectResult::StorageGet(io.get(&key)),
        Effect::StoragePut {
            key,
            value,
            expected,
        } => EffectResult::StoragePut(io.put(&key, &value, expected)),
        Effect::StorageDelete { key, expected } => {
            EffectResult::StorageDelete(io.delete(&key, expected))
        }
        Effect::StorageKeys {
            prefix,
            after,
            limit,
        } => EffectResult::StorageKeys(io.keys(&prefix, after.as_deref(), limit)),
        Effect::HttpSend(request) => EffectResult::HttpSend(io.send(request)),
        Effect::RandomBytes(len) => {
            let mut bytes = vec![0; len as usize];
            io.random(&mut bytes);
            EffectResult::RandomBytes(bytes)
        }
        Effect::NowMs => EffectResult::NowMs(io.now_ms()),
        Effect::SleepMs(ms) => {
            io.sleep_ms(ms);
            EffectResult::SleepMs
        }
        Effect::Emit(event) => {
            io.emit(event);
            EffectResult::Emit
        }
    }
}

/// Runs an operation to its end synchronously, performing each effect
/// through `io` as soon as it is asked for: the import-based path.
pub fn drive<T>(io: &mut dyn Io, operation: impl AsyncFnOnce(&Effects) -> T) -> T {
    let fx = Effects::default();
    let mut future = pin!(operation(&fx));
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let poll = future.as_mut().poll(&mut cx);
        if fx.has_events() {
            for event in fx.take_events() {
                io.emit(event);
            }
        }
        match poll {
            Poll::Ready(value) => return value,
            Poll::Pending => {
                let effect = fx
                    .take_wanted()
                    .expect("a suspended operation waits on an effect");
                fx.answer(perform(io, effect));
            }
        }
    }
}
