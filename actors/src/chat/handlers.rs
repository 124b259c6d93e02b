//! Message handlers of `Chat`.

use actix::prelude::*;

use super::messages::{Cancel, Complete};
use super::Chat;

impl Handler<Complete> for Chat {
    type Result = ();

    fn handle(&mut self, msg: Complete, ctx: &mut Context<Self>) {
        self.begin(
            msg.turn,
            &msg.agent,
            &msg.history,
            &msg.withheld,
            msg.on_call,
            ctx,
        );
    }
}

impl Handler<Cancel> for Chat {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        if self
            .turn
            .as_ref()
            .is_some_and(|turn| turn.number == msg.turn)
        {
            self.drop_turn(ctx);
        }
    }
}
