//! The registry's answers for supervisor actions: a live conversation by the key the
//! dashboard shows (`c<n>`, its registration). Calls are found with `FindCall`.

use actix::prelude::*;

use super::Registry;
use crate::call::messages::Describe;
use crate::supervise::Supervise;

/// A live conversation, to act on or describe: its customer (unmasked, for reading its
/// thread) and its actor.
#[derive(Clone)]
pub struct ConversationHandle {
    pub customer: String,
    pub supervise: Recipient<Supervise>,
    pub describe: Recipient<Describe>,
}

/// The live conversation with dashboard key `key` (`c<n>`).
#[derive(Message)]
#[rtype(result = "Option<ConversationHandle>")]
pub struct FindConversation(pub String);

impl Handler<FindConversation> for Registry {
    type Result = Option<ConversationHandle>;

    fn handle(&mut self, msg: FindConversation, _ctx: &mut Context<Self>) -> Self::Result {
        // `c<registration>` (the dashboard's key), else the customer's own key.
        let registration: Option<u64> = msg.0.strip_prefix('c').and_then(|n| n.parse().ok());
        self.conversations
            .iter()
            .find(|(customer, entry)| {
                entry.addr.connected()
                    && match registration {
                        Some(registration) => entry.registration == registration,
                        None => **customer == msg.0,
                    }
            })
            .map(|(customer, entry)| ConversationHandle {
                customer: customer.clone(),
                supervise: entry.addr.clone().recipient(),
                describe: entry.addr.clone().recipient(),
            })
    }
}
