//! `Chat`: the chat-model child of a `Conversation` or of a relay-mode `Call` (SPEC §4,
//! §5.2–§5.5). It answers one turn at a time: the owner sends the history, `Chat` adds the
//! agent's instructions and tools, streams the reply's text back as it comes and then the
//! whole reply.
//!
//! With an OpenAI key it streams Chat Completions over `awc` ([`exchange`]); 429s and 5xx
//! are retried with backoff, honouring the provider's `retry-after` (SPEC §8), on a timer
//! of this actor, so the owner and every other call go on meanwhile. Without a key the
//! offline `local` model answers at once (SPEC §6.4).
//!
//! No supervisor is needed: a turn is one request, and a failed request is retried here.

mod exchange;
mod handlers;
pub mod messages;
mod summary;

pub(crate) use summary::summarise_call;

use std::sync::Arc;

use actix::prelude::*;
use actix_http::header::CONTENT_TYPE;
use bytes::Bytes;

use crate::census::Kind;
use crate::config::Secret;
use crate::domain::agents::AgentConfig;
use crate::domain::backoff::Backoff;
use crate::domain::conversation::{Message as HistoryMessage, ModelReply};
use crate::domain::local_model::stream_tokens;
use crate::engine::Shared;
use crate::protocol::openai::chat::{
    AssistantTurn, ChatMessage, ChatRequest, ChatRole, ChatTool, ToolChoice, ToolChoiceMode,
};
use exchange::{ExchangeError, Failure};
use messages::ChatNotice;

pub struct Chat {
    shared: Arc<Shared>,
    owner: Recipient<ChatNotice>,
    /// `None` without an API key: the local model answers.
    remote: Option<Remote>,
    backoff: Backoff,
    /// The turn the remote model is answering.
    turn: Option<Turn>,
}

/// Where completions are requested, and with which key.
struct Remote {
    client: awc::Client,
    url: String,
    key: Secret,
}

/// A turn in the hands of the remote model.
struct Turn {
    number: u64,
    /// The serialized request, sent again unchanged by a retry.
    body: Bytes,
    /// Failed attempts so far.
    failures: u32,
    /// The request in flight, or the timer of the next attempt: cancelled with the turn,
    /// so nothing of it is reported afterwards.
    task: Option<SpawnHandle>,
}

impl Chat {
    pub fn new(shared: Arc<Shared>, owner: Recipient<ChatNotice>) -> Self {
        let openai = &shared.config.openai;
        let remote = openai.api_key.clone().map(|key| Remote {
            client: crate::http::client(),
            url: openai.chat_url(),
            key,
        });
        Chat {
            backoff: openai.retry.backoff(),
            shared,
            owner,
            remote,
            turn: None,
        }
    }

    /// Starts answering turn `number`; a turn in progress is dropped first.
    fn begin(
        &mut self,
        number: u64,
        agent: &str,
        history: &[HistoryMessage],
        withheld: &[String],
        on_call: bool,
        ctx: &mut Context<Self>,
    ) {
        self.drop_turn(ctx);
        let Some(agent) = self.shared.agents.agent(agent) else {
            self.fail(number, format!("no agent named `{agent}` is configured"));
            return;
        };
        if self.remote.is_none() {
            self.answer_locally(number, &agent.name, history, withheld, on_call);
            return;
        }
        match self.request_body(agent, history, withheld, on_call) {
            Ok(body) => {
                self.turn = Some(Turn {
                    number,
                    body,
                    failures: 0,
                    task: None,
                });
                self.attempt(ctx);
            }
            Err(err) => self.fail(number, format!("the request cannot be written: {err}")),
        }
    }

    /// Forgets the turn in progress, cancelling its request or retry timer.
    fn drop_turn(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.turn.take().and_then(|turn| turn.task) {
            ctx.cancel_future(handle);
        }
    }

    /// The local model's reply, its text streamed word by word.
    fn answer_locally(
        &self,
        turn: u64,
        agent: &str,
        history: &[HistoryMessage],
        withheld: &[String],
        on_call: bool,
    ) {
        let reply = self
            .shared
            .local_model
            .reply_for(agent, history, withheld, on_call);
        if let ModelReply::Text(text) = &reply {
            for token in stream_tokens(text) {
                self.owner.do_send(ChatNotice::Token {
                    turn,
                    text: token.to_owned(),
                });
            }
        }
        self.owner.do_send(ChatNotice::Reply { turn, reply });
    }

    /// The Chat Completions request: the agent's instructions, the history, its tools.
    fn request_body(
        &self,
        agent: &AgentConfig,
        history: &[HistoryMessage],
        withheld: &[String],
        on_call: bool,
    ) -> Result<Bytes, serde_json::Error> {
        let mut messages = Vec::with_capacity(history.len().saturating_add(1));
        messages.push(ChatMessage::text(
            ChatRole::System,
            agent.instructions.as_str(),
        ));
        messages.extend(history.iter().map(ChatMessage::from));
        let agents = &self.shared.agents;
        let tools = if on_call {
            agents.voice_tools(&agent.name)
        } else {
            agents.function_tools(&agent.name)
        };
        let tools: Vec<ChatTool> = tools
            .iter()
            .filter(|tool| !withheld.contains(&tool.name))
            .map(ChatTool::from)
            .collect();
        let has_tools = !tools.is_empty();
        let request = ChatRequest {
            model: self.shared.config.openai.chat_model.clone(),
            messages,
            tools: has_tools.then_some(tools),
            tool_choice: has_tools.then_some(ToolChoice::Mode(ToolChoiceMode::Auto)),
            stream: true,
            stream_options: None,
        };
        serde_json::to_vec(&request).map(Bytes::from)
    }

    /// Sends the current turn's request; its outcome comes back to [`Chat::attempt_done`].
    fn attempt(&mut self, ctx: &mut Context<Self>) {
        if !self.owner.connected() {
            // Nobody is listening any more: stop rather than spend the provider's quota.
            ctx.stop();
            return;
        }
        let (Some(remote), Some(turn)) = (&self.remote, &self.turn) else {
            return;
        };
        let request = remote
            .client
            .post(remote.url.as_str())
            .timeout(exchange::RESPONSE_TIMEOUT)
            .bearer_auth(remote.key.expose())
            .insert_header((CONTENT_TYPE, "application/json"))
            .send_body(turn.body.clone());
        let number = turn.number;
        let owner = self.owner.clone();
        let on_text = move |text: &str| {
            owner.do_send(ChatNotice::Token {
                turn: number,
                text: text.to_owned(),
            });
        };
        let handle = ctx.spawn(
            exchange::exchange(request, on_text)
                .into_actor(self)
                .map(|result, act, ctx| act.attempt_done(result, ctx)),
        );
        if let Some(turn) = &mut self.turn {
            turn.task = Some(handle);
        }
    }

    /// An exchange of the current turn is over: reply, retry later, or give up.
    fn attempt_done(&mut self, result: Result<AssistantTurn, Failure>, ctx: &mut Context<Self>) {
        let Some(turn) = &mut self.turn else {
            return;
        };
        turn.task = None;
        let number = turn.number;
        let Failure { error, streamed } = match result {
            Ok(answer) => {
                self.turn = None;
                self.shared.health.model_auth_ok();
                match reply_of(answer) {
                    Ok(reply) => self.owner.do_send(ChatNotice::Reply {
                        turn: number,
                        reply,
                    }),
                    Err(reason) => self.fail(number, reason),
                }
                return;
            }
            Err(failure) => failure,
        };
        if matches!(error, ExchangeError::Refused { .. }) {
            self.turn = None;
            let reason = error.to_string();
            self.shared.health.model_auth_failed(&reason);
            self.fail(number, reason);
            return;
        }
        turn.failures = turn.failures.saturating_add(1);
        let failures = turn.failures;
        // Text already handed on would be said twice by a retry.
        let retryable = !streamed && error.retryable();
        let delay = retryable
            .then(|| {
                self.backoff
                    .delay_with(failures, rand::random(), error.retry_after())
            })
            .flatten();
        if let Some(delay) = delay {
            tracing::warn!(%error, attempt = failures, ?delay, "chat model: retrying");
            turn.task = Some(ctx.run_later(delay, |act, ctx| act.attempt(ctx)));
            return;
        }
        self.turn = None;
        let reason = if retryable {
            format!("{error} (gave up after {failures} attempts)")
        } else {
            error.to_string()
        };
        self.fail(number, reason);
    }

    fn fail(&self, turn: u64, reason: String) {
        tracing::warn!(turn, %reason, "chat model: turn failed");
        self.owner.do_send(ChatNotice::Failed { turn, reason });
    }
}

/// The reply an assistant turn amounts to, unless there is nothing usable in it.
fn reply_of(answer: AssistantTurn) -> Result<ModelReply, String> {
    if answer.content.is_none() && answer.tool_calls.is_empty() {
        return Err("the model's answer is empty".into());
    }
    if answer
        .tool_calls
        .iter()
        .any(|call| call.id.is_empty() || call.function.name.is_empty())
    {
        return Err("the model called a tool without an id or a name".into());
    }
    Ok(answer.into())
}

impl Actor for Chat {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.started(Kind::Chat);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.stopped(Kind::Chat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::openai::chat::{FinishReason, FunctionCall, ToolCall, ToolType};

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: ToolType::Function,
            function: FunctionCall {
                name: name.into(),
                arguments: "{}".into(),
            },
        }
    }

    #[test]
    fn usable_answers_become_replies() {
        let text = AssistantTurn {
            content: Some("Hi".into()),
            tool_calls: vec![],
            finish_reason: Some(FinishReason::Stop),
        };
        assert_eq!(reply_of(text), Ok(ModelReply::Text("Hi".into())));
        let calls = AssistantTurn {
            content: None,
            tool_calls: vec![call("call_1", "faq")],
            finish_reason: Some(FinishReason::ToolCalls),
        };
        assert!(matches!(reply_of(calls), Ok(ModelReply::ToolCalls(c)) if c[0].name == "faq"));
    }

    #[test]
    fn empty_answers_and_anonymous_calls_are_refused() {
        let empty = AssistantTurn {
            content: None,
            tool_calls: vec![],
            finish_reason: Some(FinishReason::ContentFilter),
        };
        assert_eq!(reply_of(empty), Err("the model's answer is empty".into()));
        for bad in [call("", "faq"), call("call_1", "")] {
            let answer = AssistantTurn {
                content: None,
                tool_calls: vec![bad],
                finish_reason: Some(FinishReason::ToolCalls),
            };
            assert!(reply_of(answer).is_err());
        }
    }
}
