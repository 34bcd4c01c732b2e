//! The `steps` export: the lifecycle operations run step by step, each
//! effect handed to the host as data (`wit/steps.wit`).
//!
//! Two levels, for two kinds of Rust embedder:
//!
//! - [`Instance::start`], [`Instance::next`] and [`Instance::finish`] are
//!   the loop itself, for a host that performs the effects on its own (an
//!   async runtime awaiting its database and HTTP client);
//! - [`Instance::run`] drives an operation to its end, performing each
//!   effect with the instance's own [`Backends`] (the same backends the
//!   imports use), so the two paths give the same results on the same
//!   backends, and no import is ever called on this one.

pub use pleo_oauth_core::effects::{Effect, EffectResult};
pub use pleo_oauth_core::steps::{Call, Outcome, Step, StepError};
use pleo_oauth_core::types::Entry;
use wasmtime::component::ResourceAny;

use crate::bindings::exports::pleo::oauth::steps as wit;
use crate::bindings::pleo::oauth::storage as wit_storage;
use crate::imports::clock::guest_sleep;
use crate::imports::http::{from_wit_request, to_wit_response};
use crate::imports::log::from_wit_event;
use crate::imports::random::guest_bytes;
use crate::runtime::{GuestError, Instance};
use crate::{Backends, authorize, connections};

/// One operation running in an [`Instance`]: a handle to the component's
/// `operation` resource. It belongs to the instance that started it, and
/// dies with it (after a trap, the instance is replaced and its operations
/// are lost: [`GuestError::OperationLost`]). Give it back with
/// [`Instance::finish`], done or not: the resource lives in the instance's
/// store until then.
#[derive(Debug)]
pub struct Operation {
    resource: ResourceAny,
    /// The instantiation it lives in ([`Instance::instantiations`]).
    instantiation: u64,
}

impl Instance {
    /// `steps.operation` constructor: prepares `call`; it starts at the
    /// first [`Self::next`].
    pub fn start(&mut self, call: Call) -> Result<Operation, GuestError> {
        let call = to_wit_call(call);
        let resource = self.call(|store, c| {
            c.pleo_oauth_steps(store)?
                .operation()
                .call_constructor(store, &call)
        })?;
        Ok(Operation {
            resource,
            instantiation: self.instantiations(),
        })
    }

    /// `operation.next`: runs the operation until it needs an effect or is
    /// over. `None` first, then the result of each effect.
    pub fn next(
        &mut self,
        operation: &Operation,
        result: Option<EffectResult>,
    ) -> Result<Result<Step, StepError>, GuestError> {
        self.check(operation)?;
        let result = result.map(to_wit_result);
        let step = self.call(|store, c| {
            c.pleo_oauth_steps(store)?.operation().call_next(
                store,
                operation.resource,
                result.as_ref(),
            )
        })?;
        Ok(step
            .map(|step| match step {
                wit::Step::Effect(effect) => Step::Effect(from_wit_effect(effect)),
                wit::Step::Done(outcome) => Step::Done(from_wit_outcome(outcome)),
            })
            .map_err(|error| match error {
                wit::StepError::MismatchedResult => StepError::MismatchedResult,
                wit::StepError::NotWaiting => StepError::NotWaiting,
            }))
    }

    /// Drops the operation's resource, at any point of its run (a host
    /// that gives up on it). An operation of a replaced instance is gone
    /// already.
    pub fn finish(&mut self, operation: Operation) -> Result<(), GuestError> {
        if self.check(&operation).is_err() {
            return Ok(());
        }
        self.call(|store, _| operation.resource.resource_drop(store))
    }

    /// Runs `call` to its end through `steps`, performing each effect with
    /// this instance's backends.
    pub fn run(&mut self, call: Call) -> Result<Outcome, GuestError> {
        let backends = self.backends().clone();
        let operation = self.start(call)?;
        let mut result = None;
        let outcome = loop {
            let step = match self.next(&operation, result.take())? {
                Ok(step) => step,
                // This loop answers every effect in its own case: a refusal
                // is the component's fault, like a trap.
                Err(error) => {
                    self.finish(operation)?;
                    return Err(GuestError::Trap(format!(
                        "the operation refused a result in its case: {error}"
                    )));
                }
            };
            match step {
                Step::Done(outcome) => break outcome,
                Step::Effect(effect) => match perform(&backends, effect) {
                    Ok(answer) => result = Some(answer),
                    Err(error) => {
                        self.finish(operation)?;
                        return Err(error);
                    }
                },
            }
        };
        self.finish(operation)?;
        Ok(outcome)
    }

    fn check(&self, operation: &Operation) -> Result<(), GuestError> {
        if operation.instantiation == self.instantiations() && self.is_live() {
            Ok(())
        } else {
            Err(GuestError::OperationLost)
        }
    }
}

/// Performs one effect with `backends`, exactly as the import of the same
/// name would. Asking for more random bytes than the contract allows is a
/// guest bug, as it is on the import (which traps).
pub fn perform(backends: &Backends, effect: Effect) -> Result<EffectResult, GuestError> {
    Ok(match effect {
        Effect::StorageGet(key) => EffectResult::StorageGet(backends.storage.get(&key)),
        Effect::StoragePut {
            key,
            value,
            expected,
        } => EffectResult::StoragePut(backends.storage.put(&key, &value, expected)),
        Effect::StorageDelete { key, expected } => {
            EffectResult::StorageDelete(backends.storage.delete(&key, expected))
        }
        Effect::StorageKeys {
            prefix,
            after,
            limit,
        } => EffectResult::StorageKeys(backends.storage.keys(&prefix, after.as_deref(), limit)),
        Effect::HttpSend(request) => EffectResult::HttpSend(backends.http.send(request)),
        Effect::RandomBytes(len) => EffectResult::RandomBytes(
            guest_bytes(backends.random.as_ref(), len).map_err(GuestError::Trap)?,
        ),
        Effect::NowMs => EffectResult::NowMs(backends.clock.now_ms()),
        Effect::SleepMs(ms) => {
            guest_sleep(backends.clock.as_ref(), ms);
            EffectResult::SleepMs
        }
        Effect::Emit(event) => {
            backends.log.emit(event);
            EffectResult::Emit
        }
    })
}

fn to_wit_call(call: Call) -> wit::Call {
    match call {
        Call::Configure { connection, config } => wit::Call::Configure(wit::ConfigureArgs {
            connection,
            config: config.into(),
        }),
        Call::GetConfig(connection) => wit::Call::GetConfig(connection),
        Call::Status(connection) => wit::Call::Status(connection),
        Call::AccessToken(connection) => wit::Call::AccessToken(connection),
        Call::Report {
            connection,
            access_token,
            status,
            headers,
        } => wit::Call::Report(wit::ReportArgs {
            connection,
            access_token,
            status,
            headers: headers.into_iter().map(Into::into).collect(),
        }),
        Call::Disconnect { connection, revoke } => {
            wit::Call::Disconnect(wit::DisconnectArgs { connection, revoke })
        }
        Call::RetryNow(connection) => wit::Call::RetryNow(connection),
        Call::Forget(connection) => wit::Call::Forget(connection),
        Call::List { after, limit } => wit::Call::List(wit::ListArgs { after, limit }),
        Call::Begin {
            connection,
            options,
        } => wit::Call::Begin(wit::BeginArgs {
            connection,
            options: options.into(),
        }),
        Call::Complete {
            callback,
            connection,
        } => wit::Call::Complete(wit::CompleteArgs {
            callback,
            connection,
        }),
    }
}

fn from_wit_effect(effect: wit::Effect) -> Effect {
    match effect {
        wit::Effect::StorageGet(key) => Effect::StorageGet(key),
        wit::Effect::StoragePut(args) => Effect::StoragePut {
            key: args.key,
            value: args.value,
            expected: args.expected_version,
        },
        wit::Effect::StorageDelete(args) => Effect::StorageDelete {
            key: args.key,
            expected: args.expected_version,
        },
        wit::Effect::StorageKeys(args) => Effect::StorageKeys {
            prefix: args.prefix,
            after: args.after,
            limit: args.limit,
        },
        wit::Effect::HttpSend(request) => Effect::HttpSend(from_wit_request(request)),
        wit::Effect::RandomBytes(len) => Effect::RandomBytes(len),
        wit::Effect::NowMs => Effect::NowMs,
        wit::Effect::SleepMs(ms) => Effect::SleepMs(ms),
        wit::Effect::Emit(event) => Effect::Emit(from_wit_event(event)),
    }
}

fn to_wit_entry(entry: Entry) -> wit_storage::Entry {
    wit_storage::Entry {
        value: entry.value,
        version: entry.version,
    }
}

fn to_wit_result(result: EffectResult) -> wit::EffectResult {
    match result {
        EffectResult::StorageGet(r) => {
            wit::EffectResult::StorageGet(r.map(|e| e.map(to_wit_entry)).map_err(Into::into))
        }
        EffectResult::StoragePut(r) => wit::EffectResult::StoragePut(r.map_err(Into::into)),
        EffectResult::StorageDelete(r) => wit::EffectResult::StorageDelete(r.map_err(Into::into)),
        EffectResult::StorageKeys(r) => wit::EffectResult::StorageKeys(r.map_err(Into::into)),
        EffectResult::HttpSend(r) => {
            wit::EffectResult::HttpSend(r.map(to_wit_response).map_err(Into::into))
        }
        EffectResult::RandomBytes(bytes) => wit::EffectResult::RandomBytes(bytes),
        EffectResult::NowMs(ms) => wit::EffectResult::NowMs(ms),
        EffectResult::SleepMs => wit::EffectResult::SleepMs,
        EffectResult::Emit => wit::EffectResult::Emit,
    }
}

fn from_wit_outcome(outcome: wit::Outcome) -> Outcome {
    match outcome {
        wit::Outcome::Configure(r) => Outcome::Configure(connections::configure_result(r)),
        wit::Outcome::GetConfig(r) => {
            Outcome::GetConfig(r.map(|c| c.map(Into::into)).map_err(Into::into))
        }
        wit::Outcome::Status(r) => Outcome::Status(connections::status_result(r)),
        wit::Outcome::AccessToken(r) => Outcome::AccessToken(r.map(Into::into).map_err(Into::into)),
        wit::Outcome::Report(r) => Outcome::Report(r.map(Into::into).map_err(Into::into)),
        wit::Outcome::Disconnect(r) => Outcome::Disconnect(connections::disconnect_result(r)),
        wit::Outcome::RetryNow(r) => Outcome::RetryNow(r.map_err(connections::status_error)),
        wit::Outcome::Forget(r) => Outcome::Forget(r.map_err(Into::into)),
        wit::Outcome::List(r) => Outcome::List(r.map(Into::into).map_err(Into::into)),
        wit::Outcome::Begin(r) => Outcome::Begin(authorize::begin_result(r)),
        wit::Outcome::Complete(r) => Outcome::Complete(authorize::complete_result(r)),
    }
}
