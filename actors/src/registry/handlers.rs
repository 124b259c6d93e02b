//! Message handlers of `Registry`.

use actix::prelude::*;

use super::messages::{AdmitCall, CallEnded, CallInfo, ListCalls, RegisterCall};
use super::{CallEntry, Registry};
use crate::call::messages::Replaced;

impl Handler<RegisterCall> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterCall, _ctx: &mut Context<Self>) {
        let registration = msg.registration;
        let call_sid = msg.info.call_sid.clone();
        let entry = CallEntry {
            registration,
            addr: msg.addr,
            info: msg.info,
        };
        if let Some(old) = self.calls.insert(call_sid.clone(), entry) {
            tracing::info!(call_sid = %call_sid, "second media socket for the call replaces the first");
            old.addr.do_send(Replaced);
        }
    }
}

impl Handler<CallEnded> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallEnded, _ctx: &mut Context<Self>) {
        let current = self
            .calls
            .get(&msg.call_sid)
            .is_some_and(|entry| entry.registration == msg.registration);
        if current {
            self.calls.remove(&msg.call_sid);
        }
    }
}

impl Handler<AdmitCall> for Registry {
    type Result = bool;

    fn handle(&mut self, _: AdmitCall, _ctx: &mut Context<Self>) -> bool {
        self.calls.len() < self.max_calls
    }
}

impl Handler<ListCalls> for Registry {
    type Result = MessageResult<ListCalls>;

    fn handle(&mut self, _: ListCalls, _ctx: &mut Context<Self>) -> Self::Result {
        let calls: Vec<CallInfo> = self.calls.values().map(|e| e.info.clone()).collect();
        MessageResult(calls)
    }
}
