//! The step machine behind the `steps` export (`wit/steps.wit`): one
//! operation of `connections` or `authorize`, run as the same future the
//! import-based functions run, handing each effect out as data and resuming
//! when its result comes back.
//!
//! The only difference from the synchronous path is where the current time
//! comes from: the synchronous functions take it as an argument (the
//! component reads `clock.now-ms` first), and an operation here asks for it
//! with a `now-ms` effect as its first step; both then run the same `async`
//! function with it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::authorize::{self, Authorization, BeginError, BeginOptions, CompleteError, Completed};
use crate::connection::{
    self as c, ApiAction, Bearer, ConfigureError, ConnectionConfig, ConnectionPage,
    DisconnectError, Refusal, Revocation, StatusError, StatusView,
};
use crate::effects::{Effect, EffectKind, EffectResult, Effects};
use crate::types::{Event, Header, ResponseHead, StorageError};

/// The operation to run, with its function's arguments (`steps.call`).
/// `Debug` names the case and the connection only: `report` carries an
/// access token and `complete` a callback with a code and a state.
#[derive(Clone, PartialEq, Eq)]
pub enum Call {
    Configure {
        connection: String,
        config: ConnectionConfig,
    },
    GetConfig(String),
    Status(String),
    AccessToken(String),
    Report {
        connection: String,
        access_token: String,
        status: u16,
        headers: Vec<Header>,
    },
    Disconnect {
        connection: String,
        revoke: bool,
    },
    RetryNow(String),
    Forget(String),
    List {
        after: Option<String>,
        limit: u32,
    },
    Begin {
        connection: String,
        options: BeginOptions,
    },
    Complete {
        callback: String,
        connection: Option<String>,
    },
}

impl Call {
    fn name(&self) -> &'static str {
        match self {
            Self::Configure { .. } => "configure",
            Self::GetConfig(_) => "get-config",
            Self::Status(_) => "status",
            Self::AccessToken(_) => "access-token",
            Self::Report { .. } => "report",
            Self::Disconnect { .. } => "disconnect",
            Self::RetryNow(_) => "retry-now",
            Self::Forget(_) => "forget",
            Self::List { .. } => "list",
            Self::Begin { .. } => "begin",
            Self::Complete { .. } => "complete",
        }
    }

    fn connection(&self) -> Option<&str> {
        match self {
            Self::Configure { connection, .. }
            | Self::GetConfig(connection)
            | Self::Status(connection)
            | Self::AccessToken(connection)
            | Self::Report { connection, .. }
            | Self::Disconnect { connection, .. }
            | Self::RetryNow(connection)
            | Self::Forget(connection)
            | Self::Begin { connection, .. } => Some(connection),
            Self::Complete { connection, .. } => connection.as_deref(),
            Self::List { .. } => None,
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("operation", &self.name())
            .field("connection", &self.connection())
            .finish_non_exhaustive()
    }
}

/// The operation's result, in the case of its call (`steps.outcome`).
/// Secrets inside (`Bearer`, `Authorization`) have redacted `Debug`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Configure(Result<(), ConfigureError>),
    GetConfig(Result<Option<ConnectionConfig>, StorageError>),
    Status(Result<StatusView, StatusError>),
    AccessToken(Result<Bearer, Refusal>),
    Report(Result<ApiAction, Refusal>),
    Disconnect(Result<Revocation, DisconnectError>),
    RetryNow(Result<(), StatusError>),
    Forget(Result<(), StorageError>),
    List(Result<ConnectionPage, StorageError>),
    Begin(Result<Authorization, BeginError>),
    Complete(Result<Completed, CompleteError>),
}

/// What the operation does next (`steps.step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Perform this effect and pass its result to [`Operation::next`].
    Effect(Effect),
    /// The operation is over.
    Done(Outcome),
}

/// A call to [`Operation::next`] that breaks the rules of the loop; nothing
/// changed (`steps.step-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("the result is not of the outstanding effect's case; that effect is still outstanding")]
    MismatchedResult,
    #[error("no effect is outstanding")]
    NotWaiting,
}

/// Runs one call: the same `async` functions as the synchronous path, the
/// time read with a `now-ms` effect where the synchronous path takes it as
/// an argument (only by the operations that read it).
pub async fn run(fx: &Effects, call: Call) -> Outcome {
    match call {
        Call::Configure { connection, config } => {
            Outcome::Configure(c::configure_async(fx, &connection, &config).await)
        }
        Call::GetConfig(connection) => {
            Outcome::GetConfig(c::get_config_async(fx, &connection).await)
        }
        Call::Status(connection) => {
            let now = fx.now_ms().await;
            Outcome::Status(c::status_view_async(fx, now, &connection).await)
        }
        Call::AccessToken(connection) => {
            let now = fx.now_ms().await;
            Outcome::AccessToken(c::access_token_async(fx, now, &connection).await)
        }
        Call::Report {
            connection,
            access_token,
            status,
            headers,
        } => {
            let now = fx.now_ms().await;
            let response = ResponseHead { status, headers };
            let action = c::report_async(fx, now, &connection, &access_token, &response).await;
            Outcome::Report(action)
        }
        Call::Disconnect { connection, revoke } => {
            let now = fx.now_ms().await;
            Outcome::Disconnect(c::disconnect_async(fx, now, &connection, revoke).await)
        }
        Call::RetryNow(connection) => {
            let now = fx.now_ms().await;
            Outcome::RetryNow(c::retry_now_async(fx, now, &connection).await)
        }
        Call::Forget(connection) => Outcome::Forget(c::forget_async(fx, &connection).await),
        Call::List { after, limit } => {
            let now = fx.now_ms().await;
            Outcome::List(c::list_async(fx, now, after.as_deref(), limit).await)
        }
        Call::Begin {
            connection,
            options,
        } => {
            let now = fx.now_ms().await;
            Outcome::Begin(authorize::begin_async(fx, now, &connection, &options).await)
        }
        Call::Complete {
            callback,
            connection,
        } => {
            let now = fx.now_ms().await;
            let completed =
                authorize::complete_async(fx, now, &callback, connection.as_deref()).await;
            Outcome::Complete(completed)
        }
    }
}

/// Where an operation is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Created; the first `next(None)` starts it.
    NotStarted,
    /// This effect was handed out and its result is awaited (for
    /// `random-bytes`, with the number of bytes asked for).
    Waiting(EffectKind, Option<u32>),
    /// The outcome was handed out.
    Done,
}

/// One run of one operation (`steps.operation`). Single-threaded, like the
/// instance it lives in.
pub struct Operation {
    fx: Rc<Effects>,
    /// `None` once the future has finished (dropped at once: it holds the
    /// call's arguments, which may be secrets).
    future: Option<Pin<Box<dyn Future<Output = Outcome>>>>,
    phase: Phase,
    /// Events emitted and not yet handed out, before `wanted` or `finished`.
    events: VecDeque<Event>,
    /// The effect the future waits on, once the events before it are out.
    wanted: Option<Effect>,
    /// The outcome, once the events before it are out.
    finished: Option<Outcome>,
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Operation {
    /// Prepares the operation; nothing runs until the first [`Self::next`].
    pub fn new(call: Call) -> Self {
        let fx = Rc::new(Effects::default());
        let shared = Rc::clone(&fx);
        let future = Box::pin(async move { run(&shared, call).await });
        Self {
            fx,
            future: Some(future),
            phase: Phase::NotStarted,
            events: VecDeque::new(),
            wanted: None,
            finished: None,
        }
    }

    /// Runs the operation until it needs an effect or is over. `None` the
    /// first time, then the result of each effect, in its case; a result of
    /// another case (or `None`) leaves the same effect outstanding.
    pub fn next(&mut self, result: Option<EffectResult>) -> Result<Step, StepError> {
        match (self.phase, result) {
            (Phase::NotStarted, None) => {}
            (Phase::NotStarted | Phase::Done, _) => return Err(StepError::NotWaiting),
            (Phase::Waiting(..), None) => return Err(StepError::MismatchedResult),
            (Phase::Waiting(kind, random_len), Some(result)) => {
                let short = match (&result, random_len) {
                    (EffectResult::RandomBytes(bytes), Some(len)) => bytes.len() != len as usize,
                    _ => false,
                };
                // Bytes of another number than asked for do not answer the
                // effect either: the state and the verifier depend on it.
                if result.kind() != kind || short {
                    return Err(StepError::MismatchedResult);
                }
                // An emitted event was only handed out: the future did not
                // wait on it, and goes on with the next one in line.
                if kind != EffectKind::Emit {
                    self.fx.answer(result);
                }
            }
        }
        loop {
            if let Some(event) = self.events.pop_front() {
                self.phase = Phase::Waiting(EffectKind::Emit, None);
                return Ok(Step::Effect(Effect::Emit(event)));
            }
            if let Some(effect) = self.wanted.take() {
                let random_len = match effect {
                    Effect::RandomBytes(len) => Some(len),
                    _ => None,
                };
                self.phase = Phase::Waiting(effect.kind(), random_len);
                return Ok(Step::Effect(effect));
            }
            if let Some(outcome) = self.finished.take() {
                self.phase = Phase::Done;
                return Ok(Step::Done(outcome));
            }
            self.poll();
        }
    }

    /// Polls the future once: it finishes or waits on an effect, and the
    /// events it emitted on the way are queued before either.
    fn poll(&mut self) {
        let future = self
            .future
            .as_mut()
            .expect("polled only while the operation runs");
        let poll = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        self.events.extend(self.fx.take_events());
        match poll {
            Poll::Ready(outcome) => {
                self.future = None;
                self.finished = Some(outcome);
            }
            Poll::Pending => {
                let effect = self
                    .fx
                    .take_wanted()
                    .expect("a suspended operation waits on an effect");
                self.wanted = Some(effect);
            }
        }
    }
}

#[cfg(test)]
mod tests;
