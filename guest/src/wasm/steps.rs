//! The `steps` export: the core's [`crate::steps::Operation`] as a WIT
//! resource. Conversions only; the loop's rules are the core's.

use std::cell::RefCell;

use super::Component;
use super::bindings::exports::pleo::oauth::steps as w;
use super::{authorize, connections, io};
use crate::effects::{Effect, EffectResult};
use crate::steps::{self as s, Call, Outcome, Step, StepError};
use crate::types::{StorageError, TransportError};

impl w::Guest for Component {
    type Operation = Operation;
}

/// One operation. The resource's methods take `&self`; the instance is
/// single-threaded, so a `RefCell` holds the machine.
pub struct Operation(RefCell<s::Operation>);

impl w::GuestOperation for Operation {
    fn new(call: w::Call) -> Self {
        Self(RefCell::new(s::Operation::new(call.into())))
    }

    fn next(&self, result: Option<w::EffectResult>) -> Result<w::Step, w::StepError> {
        let step = self.0.borrow_mut().next(result.map(Into::into))?;
        Ok(match step {
            Step::Effect(effect) => w::Step::Effect(effect.into()),
            Step::Done(outcome) => w::Step::Done(outcome.into()),
        })
    }
}

enum_into!(StepError => w::StepError { MismatchedResult, NotWaiting });

impl From<w::Call> for Call {
    fn from(call: w::Call) -> Self {
        match call {
            w::Call::Configure(args) => Self::Configure {
                connection: args.connection,
                config: args.config.into(),
            },
            w::Call::GetConfig(connection) => Self::GetConfig(connection),
            w::Call::Status(connection) => Self::Status(connection),
            w::Call::AccessToken(connection) => Self::AccessToken(connection),
            w::Call::Report(args) => Self::Report {
                connection: args.connection,
                access_token: args.access_token,
                status: args.status,
                headers: super::classify::headers(args.headers),
            },
            w::Call::Disconnect(args) => Self::Disconnect {
                connection: args.connection,
                revoke: args.revoke,
            },
            w::Call::RetryNow(connection) => Self::RetryNow(connection),
            w::Call::Forget(connection) => Self::Forget(connection),
            w::Call::List(args) => Self::List {
                after: args.after,
                limit: args.limit,
            },
            w::Call::Begin(args) => Self::Begin {
                connection: args.connection,
                options: args.options.into(),
            },
            w::Call::Complete(args) => Self::Complete {
                callback: args.callback,
                connection: args.connection,
            },
        }
    }
}

impl From<Effect> for w::Effect {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::StorageGet(key) => Self::StorageGet(key),
            Effect::StoragePut {
                key,
                value,
                expected,
            } => Self::StoragePut(w::PutArgs {
                key,
                value,
                expected_version: expected,
            }),
            Effect::StorageDelete { key, expected } => Self::StorageDelete(w::DeleteArgs {
                key,
                expected_version: expected,
            }),
            Effect::StorageKeys {
                prefix,
                after,
                limit,
            } => Self::StorageKeys(w::KeysArgs {
                prefix,
                after,
                limit,
            }),
            Effect::HttpSend(request) => Self::HttpSend(io::to_request(request)),
            Effect::RandomBytes(len) => Self::RandomBytes(len),
            Effect::NowMs => Self::NowMs,
            Effect::SleepMs(ms) => Self::SleepMs(ms),
            Effect::Emit(event) => Self::Emit(io::to_event(event)),
        }
    }
}

impl From<w::EffectResult> for EffectResult {
    fn from(result: w::EffectResult) -> Self {
        match result {
            w::EffectResult::StorageGet(r) => {
                Self::StorageGet(r.map(|e| e.map(io::from_entry)).map_err(StorageError::from))
            }
            w::EffectResult::StoragePut(r) => Self::StoragePut(r.map_err(StorageError::from)),
            w::EffectResult::StorageDelete(r) => Self::StorageDelete(r.map_err(StorageError::from)),
            w::EffectResult::StorageKeys(r) => Self::StorageKeys(r.map_err(StorageError::from)),
            w::EffectResult::HttpSend(r) => {
                Self::HttpSend(r.map(io::from_response).map_err(TransportError::from))
            }
            w::EffectResult::RandomBytes(bytes) => Self::RandomBytes(bytes),
            w::EffectResult::NowMs(ms) => Self::NowMs(ms),
            w::EffectResult::SleepMs => Self::SleepMs,
            w::EffectResult::Emit => Self::Emit,
        }
    }
}

impl From<Outcome> for w::Outcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Configure(r) => Self::Configure(connections::configure_result(r)),
            Outcome::GetConfig(r) => {
                Self::GetConfig(r.map(|c| c.map(Into::into)).map_err(Into::into))
            }
            Outcome::Status(r) => Self::Status(connections::status_result(r)),
            Outcome::AccessToken(r) => Self::AccessToken(r.map(Into::into).map_err(Into::into)),
            Outcome::Report(r) => Self::Report(r.map(Into::into).map_err(Into::into)),
            Outcome::Disconnect(r) => Self::Disconnect(connections::disconnect_result(r)),
            Outcome::RetryNow(r) => Self::RetryNow(r.map_err(connections::status_error)),
            Outcome::Forget(r) => Self::Forget(r.map_err(Into::into)),
            Outcome::List(r) => Self::List(r.map(Into::into).map_err(Into::into)),
            Outcome::Begin(r) => Self::Begin(authorize::begin_result(r)),
            Outcome::Complete(r) => Self::Complete(authorize::complete_result(r)),
        }
    }
}
