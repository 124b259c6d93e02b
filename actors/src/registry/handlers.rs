//! Message handlers of `Registry`.

use actix::prelude::*;

use std::time::{Duration, Instant};

use super::messages::{
    AdmitCall, CallEnded, CallInfo, DescribeCalls, FindCall, ListCalls, RegisterCall,
};
use super::{CallEntry, Registry};
use crate::call::messages::Replaced;
use crate::call::messages::{CallView, Describe};
use crate::call::Call;

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

/// A call busier than this is left out of one dashboard refresh rather than holding it up.
const DESCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Handler<DescribeCalls> for Registry {
    type Result = ResponseFuture<Vec<CallView>>;

    fn handle(&mut self, _: DescribeCalls, _ctx: &mut Context<Self>) -> Self::Result {
        let questions: Vec<_> = self
            .calls
            .values()
            .map(|entry| {
                entry
                    .addr
                    .send(Describe {
                        sent_at: Instant::now(),
                    })
                    .timeout(DESCRIBE_TIMEOUT)
            })
            .collect();
        Box::pin(async move {
            let answers = futures_util::future::join_all(questions).await;
            let mut views: Vec<CallView> = answers.into_iter().filter_map(Result::ok).collect();
            views.sort_by_key(|view| view.started_at_ms);
            views
        })
    }
}

impl Handler<FindCall> for Registry {
    type Result = Option<Addr<Call>>;

    fn handle(&mut self, msg: FindCall, _ctx: &mut Context<Self>) -> Self::Result {
        self.calls.get(&msg.0).map(|entry| entry.addr.clone())
    }
}
