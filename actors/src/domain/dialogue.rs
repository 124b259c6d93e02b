//! The text dialogue loop shared by every chat-model channel (SMS, WhatsApp,
//! Conversations, web chat, ConversationRelay voice): a customer message goes to
//! the model; tool calls run (`send_sms` among them), handoffs switch the active
//! agent and escalation becomes an effect — both decided by [`super::effects`],
//! as on Realtime calls; the model is asked again until it answers in text.
//!
//! Pure and synchronous: the owning actor feeds it events and carries out the
//! [`Action`]s it returns, so the whole loop is tested here without a runtime.

use serde_json::{json, Value};

use super::agents::AgentsConfig;
use super::conversation::{Message, ModelReply, Role, ToolCallReq};
use super::effects::{self, Effect, EffectScope, Medium, Withheld};

/// Model calls allowed for one customer message before the loop gives up: a model
/// that keeps calling tools must not spin forever.
pub const MAX_STEPS: u32 = 6;
/// History kept in memory and sent to the model; older turns live in the store.
pub const MAX_HISTORY: usize = 60;

/// What the owner must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the chat model for turn `turn` of `agent` over `history`.
    AskModel {
        turn: u64,
        agent: String,
        history: Vec<Message>,
        /// Tools not offered to the model for this customer (e.g. `send_sms` to a landline).
        withheld: Vec<String>,
        /// The dialogue is a phone call's: the model may also be offered call-only tools
        /// (`take_voicemail`).
        on_call: bool,
    },
    /// Run a tool (built-in or HTTP) and report with [`Dialogue::tool_finished`].
    RunTool {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// The assistant's answer to the customer.
    Reply { text: String },
    /// The active agent changed.
    HandedOff { from: String, to: String },
    /// The customer asked for a human (or the agent decided so), and one is available.
    Escalate { reason: String },
    /// The caller is to leave a message (`<Record>`) once the answer has been spoken.
    Voicemail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    Idle,
    Model { turn: u64 },
    Tools { pending: Vec<String> },
}

/// One customer's dialogue with the agents.
#[derive(Debug, Clone)]
pub struct Dialogue {
    agent: String,
    history: Vec<Message>,
    /// When each user message of `history` was written, in order (ms since the epoch;
    /// `u64::MAX` when unknown, which never expires): what [`Dialogue::forget_before`]
    /// reads.
    user_times: Vec<u64>,
    /// What the model should know before the conversation (memory of earlier calls).
    context: Option<String>,
    turn: u64,
    steps: u32,
    waiting: Waiting,
    /// What escalation means here, and whether a person can take over.
    medium: Medium,
    human_available: bool,
    /// Tools not offered for this customer.
    withheld: Withheld,
}

impl Dialogue {
    /// A dialogue with `agent` active, continuing `history` (restored from the store).
    pub fn new(agent: impl Into<String>, history: Vec<Message>) -> Self {
        let users = history.iter().filter(|m| m.role == Role::User).count();
        Dialogue {
            agent: agent.into(),
            history,
            user_times: vec![u64::MAX; users],
            context: None,
            turn: 0,
            steps: 0,
            waiting: Waiting::Idle,
            medium: Medium::Text,
            human_available: false,
            withheld: Withheld::default(),
        }
    }

    /// Where the dialogue happens (a call or text) and whether a person can take over:
    /// what `escalate_to_human` does (SPEC §14).
    pub fn with_escalation(mut self, medium: Medium, human_available: bool) -> Self {
        self.medium = medium;
        self.human_available = human_available;
        self
    }

    /// When the history's user messages were written, oldest first (one per user
    /// message; otherwise ignored).
    pub fn with_user_times(mut self, times: Vec<u64>) -> Self {
        if times.len() == self.user_times.len() {
            self.user_times = times;
        }
        self
    }

    /// Text history's time to live (`messaging.history_ttl_hours`): exchanges begun by a
    /// user message written before `cutoff_ms` leave the model's context (the store keeps
    /// them). Cuts only at a user message, so a tool call never loses its result. Returns
    /// how many messages left.
    pub fn forget_before(&mut self, cutoff_ms: u64) -> usize {
        if self.is_busy() {
            return 0;
        }
        let kept_users = self.user_times.iter().position(|&t| t >= cutoff_ms);
        let cut = match kept_users {
            Some(0) if self.history.first().is_some_and(|m| m.role == Role::User) => return 0,
            Some(n) => self
                .history
                .iter()
                .enumerate()
                .filter(|(_, m)| m.role == Role::User)
                .nth(n)
                .map_or(self.history.len(), |(i, _)| i),
            None => self.history.len(),
        };
        let users = kept_users.unwrap_or(self.user_times.len());
        self.user_times.drain(..users.min(self.user_times.len()));
        self.history.drain(..cut.min(self.history.len()));
        cut
    }

    /// Background the model gets as a system message ahead of the history, e.g. what
    /// the customer said on an earlier call.
    pub fn set_context(&mut self, context: Option<String>) {
        self.context = context.filter(|c| !c.trim().is_empty());
    }

    /// Tools the model is not offered for this customer; the agents are told why.
    pub fn withhold(&mut self, withheld: Withheld) {
        if let Some(note) = withheld.note() {
            self.add_context(note.to_owned());
        }
        self.withheld = withheld;
    }

    /// Adds `note` to the background the model gets (after what is there already).
    pub fn add_context(&mut self, note: String) {
        self.context = Some(match self.context.take() {
            Some(context) => format!("{context}\n\n{note}"),
            None => note,
        });
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// A supervisor's instruction ("offer the 10 % voucher"): it joins the background the
    /// model gets, so the next model turn has it (SPEC §15, supervisor actions).
    pub fn supervisor_instruction(
        &mut self,
        text: &str,
    ) -> Result<(), super::supervision::Refusal> {
        let text = super::supervision::clean_text(text)?;
        self.add_context(super::supervision::instruction_note(&text));
        Ok(())
    }

    /// The customer wrote while a supervisor has the conversation: the words join the
    /// history, so the model knows them once it is given the conversation back, but no
    /// model turn is asked for.
    pub fn customer_said_unanswered(&mut self, text: &str) {
        self.push_user(text, None);
        self.trim();
    }

    /// A supervisor answered the customer in the assistant's place: the words join the
    /// history as the assistant's, which is what the customer received.
    pub fn supervisor_said(&mut self, text: &str) {
        self.history.push(Message::assistant(text));
        self.trim();
    }

    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Whether a customer message is being worked on.
    pub fn is_busy(&self) -> bool {
        self.waiting != Waiting::Idle
    }

    /// The customer wrote (or said) `text`.
    pub fn customer_says(&mut self, text: &str) -> Vec<Action> {
        self.customer_says_at(text, None)
    }

    /// The customer wrote `text` at `at_ms` (what the history's time to live reads).
    pub fn customer_says_at(&mut self, text: &str, at_ms: Option<u64>) -> Vec<Action> {
        self.push_user(text, at_ms);
        self.trim();
        self.steps = 0;
        vec![self.ask_model()]
    }

    /// A user message, with its time (else the last one known).
    fn push_user(&mut self, text: &str, at_ms: Option<u64>) {
        let at_ms = at_ms
            .or_else(|| self.user_times.last().copied())
            .unwrap_or(u64::MAX);
        self.history.push(Message::user(text));
        self.user_times.push(at_ms);
    }

    /// The model answered turn `turn`. Stale answers (an older turn) are ignored.
    pub fn model_replied(
        &mut self,
        turn: u64,
        reply: ModelReply,
        agents: &AgentsConfig,
    ) -> Vec<Action> {
        if self.waiting != (Waiting::Model { turn }) {
            return Vec::new();
        }
        match reply {
            ModelReply::Text(text) => {
                self.waiting = Waiting::Idle;
                self.history.push(Message::assistant(text.clone()));
                vec![Action::Reply { text }]
            }
            ModelReply::ToolCalls(calls) if calls.is_empty() => {
                self.waiting = Waiting::Idle;
                vec![self.apology("the model answered with nothing")]
            }
            ModelReply::ToolCalls(calls) => self.tool_calls(calls, agents),
        }
    }

    fn tool_calls(&mut self, calls: Vec<ToolCallReq>, agents: &AgentsConfig) -> Vec<Action> {
        self.history
            .push(ModelReply::ToolCalls(calls.clone()).into());
        let mut actions = Vec::new();
        let mut pending = Vec::new();
        for call in calls {
            let scope = EffectScope {
                agents,
                agent: &self.agent,
                human_available: self.human_available,
                medium: self.medium,
                withheld: &self.withheld,
            };
            let Some(decision) = effects::decide(&call.name, &call.arguments, &scope) else {
                pending.push(call.id.clone());
                actions.push(Action::RunTool {
                    call_id: call.id,
                    name: call.name,
                    arguments: call.arguments,
                });
                continue;
            };
            match decision.effect {
                Some(Effect::Handoff { from, to }) => {
                    self.agent.clone_from(&to);
                    actions.push(Action::HandedOff { from, to });
                }
                Some(Effect::Escalate { reason }) => actions.push(Action::Escalate { reason }),
                Some(Effect::Voicemail) => actions.push(Action::Voicemail),
                None => {}
            }
            self.history
                .push(Message::tool_result(&call.id, &decision.output));
        }
        if pending.is_empty() {
            actions.push(self.next_step());
        } else {
            self.waiting = Waiting::Tools { pending };
        }
        actions
    }

    /// Tool `call_id` finished with `output` (its JSON text, or `{"error": …}`).
    pub fn tool_finished(&mut self, call_id: &str, output: &str) -> Vec<Action> {
        let Waiting::Tools { pending } = &mut self.waiting else {
            return Vec::new();
        };
        let Some(index) = pending.iter().position(|id| id == call_id) else {
            return Vec::new();
        };
        pending.remove(index);
        let done = pending.is_empty();
        let value = serde_json::from_str(output).unwrap_or_else(|_| Value::String(output.into()));
        self.history.push(Message::tool_result(call_id, &value));
        if done {
            vec![self.next_step()]
        } else {
            Vec::new()
        }
    }

    /// The model could not answer turn `turn` (provider down past its retries).
    pub fn model_failed(&mut self, turn: u64, reason: &str) -> Vec<Action> {
        if self.waiting != (Waiting::Model { turn }) {
            return Vec::new();
        }
        self.waiting = Waiting::Idle;
        vec![self.apology(reason)]
    }

    /// The caller interrupted the answer after hearing `heard` of it (relay): the history
    /// keeps only what was heard, so the model does not assume more. A finished answer is
    /// cut; one still being worked on is abandoned, and what of it was already spoken
    /// becomes the assistant's words (an earlier answer is never touched).
    pub fn interrupted(&mut self, heard: &str) {
        let heard = heard.trim_end();
        if self.is_busy() {
            self.abandon();
            if !heard.trim().is_empty() {
                self.history
                    .push(Message::assistant(format!("{heard} …(interrupted)")));
            }
            return;
        }
        if let Some(last) = self
            .history
            .iter_mut()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.is_empty())
        {
            last.content = if heard.trim().is_empty() {
                "(interrupted before anything was heard)".into()
            } else {
                format!("{heard} …(interrupted)")
            };
        }
    }

    /// Abandons the turn in progress (the customer spoke again over a relay call). Tool
    /// calls still running get an error result, so the history stays one the model accepts
    /// (every tool call answered).
    pub fn abandon(&mut self) {
        if let Waiting::Tools { pending } = std::mem::replace(&mut self.waiting, Waiting::Idle) {
            let output = json!({ "error": "abandoned: the customer spoke again" });
            for call_id in pending {
                self.history.push(Message::tool_result(&call_id, &output));
            }
        }
    }

    fn next_step(&mut self) -> Action {
        self.steps += 1;
        if self.steps >= MAX_STEPS {
            self.waiting = Waiting::Idle;
            return self.apology("too many tool steps for one message");
        }
        self.ask_model()
    }

    fn ask_model(&mut self) -> Action {
        self.turn += 1;
        self.waiting = Waiting::Model { turn: self.turn };
        let mut history = Vec::with_capacity(self.history.len() + 1);
        if let Some(context) = &self.context {
            history.push(Message::system(context.clone()));
        }
        history.extend(self.history.iter().cloned());
        Action::AskModel {
            turn: self.turn,
            agent: self.agent.clone(),
            history,
            withheld: self.withheld.tools().to_vec(),
            on_call: self.medium == Medium::Voice,
        }
    }

    fn apology(&self, reason: &str) -> Action {
        tracing::warn!(%reason, "dialogue turn failed; apologising");
        Action::Reply {
            text: "Sorry, I can't answer that right now. Please try again in a moment.".into(),
        }
    }

    /// Keeps the history bounded without splitting a tool call from its results.
    fn trim(&mut self) {
        if self.history.len() <= MAX_HISTORY {
            return;
        }
        let mut cut = self.history.len() - MAX_HISTORY;
        while self.history.get(cut).is_some_and(|m| m.role != Role::User) {
            cut += 1;
        }
        let cut = cut.min(self.history.len());
        let users = self
            .history
            .iter()
            .take(cut)
            .filter(|m| m.role == Role::User)
            .count();
        self.user_times.drain(..users.min(self.user_times.len()));
        self.history.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> AgentsConfig {
        crate::domain::agents::shipped()
    }

    fn call(id: &str, name: &str, args: &str) -> ToolCallReq {
        ToolCallReq {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    fn turn_of(actions: &[Action]) -> u64 {
        match actions.last() {
            Some(Action::AskModel { turn, .. }) => *turn,
            other => panic!("expected a model request, got {other:?}"),
        }
    }

    #[test]
    fn a_supervisor_instruction_reaches_the_next_model_turn() {
        let mut d = Dialogue::new("triage", Vec::new());
        d.set_context(Some("Earlier call: order 1001.".into()));
        assert_eq!(
            d.supervisor_instruction("  "),
            Err(crate::domain::supervision::Refusal::Empty)
        );
        d.supervisor_instruction("offer the 10 % voucher")
            .expect("instructed");
        let Action::AskModel { history, .. } = d.customer_says("hello").remove(0) else {
            panic!("a model turn");
        };
        let system = &history[0];
        assert_eq!(system.role, Role::System);
        assert!(system.content.contains("order 1001"), "{system:?}");
        assert!(
            system.content.contains("offer the 10 % voucher"),
            "{system:?}"
        );
    }

    #[test]
    fn while_a_supervisor_answers_the_model_is_not_asked_but_learns_what_was_said() {
        let mut d = Dialogue::new("triage", Vec::new());
        d.customer_said_unanswered("is anyone there?");
        d.supervisor_said("Yes, this is Sam from the store.");
        assert!(!d.is_busy());
        let Action::AskModel { history, .. } = d.customer_says("thanks Sam").remove(0) else {
            panic!("a model turn");
        };
        let said: Vec<(Role, &str)> = history
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            said,
            vec![
                (Role::User, "is anyone there?"),
                (Role::Assistant, "Yes, this is Sam from the store."),
                (Role::User, "thanks Sam"),
            ]
        );
    }

    #[test]
    fn a_text_answer_ends_the_turn() {
        let agents = agents();
        let mut d = Dialogue::new("triage", Vec::new());
        let turn = turn_of(&d.customer_says("hello"));
        assert!(d.is_busy());
        let actions = d.model_replied(turn, ModelReply::Text("Hi!".into()), &agents);
        assert_eq!(actions, vec![Action::Reply { text: "Hi!".into() }]);
        assert!(!d.is_busy());
        assert_eq!(d.history().len(), 2);
    }

    #[test]
    fn tools_run_then_the_model_is_asked_again_with_their_results() {
        let agents = agents();
        let mut d = Dialogue::new("orders", Vec::new());
        let turn = turn_of(&d.customer_says("where is order 1001?"));
        let actions = d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![call("c1", "lookup_order", r#"{"order_id":"1001"}"#)]),
            &agents,
        );
        assert_eq!(
            actions,
            vec![Action::RunTool {
                call_id: "c1".into(),
                name: "lookup_order".into(),
                arguments: r#"{"order_id":"1001"}"#.into()
            }]
        );
        assert!(
            d.tool_finished("other", "{}").is_empty(),
            "unknown call ignored"
        );
        let actions = d.tool_finished("c1", r#"{"status":"shipped"}"#);
        let Some(Action::AskModel { history, .. }) = actions.last() else {
            panic!("{actions:?}");
        };
        let last = history.last().expect("tool result");
        assert_eq!(last.role, Role::Tool);
        assert_eq!(last.tool_call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn a_handoff_switches_the_agent_and_keeps_the_history() {
        let agents = agents();
        let mut d = Dialogue::new("triage", Vec::new());
        let turn = turn_of(&d.customer_says("I want to book an appointment"));
        let actions = d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![call("c1", "transfer_to_booking", "{}")]),
            &agents,
        );
        assert_eq!(
            actions.first(),
            Some(&Action::HandedOff {
                from: "triage".into(),
                to: "booking".into()
            })
        );
        let Some(Action::AskModel { agent, history, .. }) = actions.last() else {
            panic!("{actions:?}");
        };
        assert_eq!(agent, "booking");
        assert_eq!(
            history.first().map(|m| m.content.as_str()),
            Some("I want to book an appointment")
        );
        assert_eq!(d.agent(), "booking");
    }

    #[test]
    fn a_handoff_the_agent_does_not_have_is_refused_to_the_model() {
        let agents = agents();
        let mut d = Dialogue::new("support", Vec::new());
        let turn = turn_of(&d.customer_says("billing please"));
        let actions = d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![call("c1", "transfer_to_billing", "{}")]),
            &agents,
        );
        assert_eq!(d.agent(), "support");
        assert!(matches!(actions.last(), Some(Action::AskModel { .. })));
        assert!(d
            .history()
            .iter()
            .any(|m| m.content.contains("cannot hand off")));
    }

    #[test]
    fn escalation_is_an_effect_and_send_sms_is_a_tool() {
        let agents = agents();
        let mut d = Dialogue::new("support", Vec::new()).with_escalation(Medium::Text, true);
        let turn = turn_of(&d.customer_says("a person please"));
        let actions = d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![
                call("c1", "escalate_to_human", r#"{"reason":"asked"}"#),
                call("c2", "send_sms", r#"{"message":"Your ticket is 42"}"#),
            ]),
            &agents,
        );
        assert_eq!(
            actions,
            vec![
                Action::Escalate {
                    reason: "asked".into()
                },
                Action::RunTool {
                    call_id: "c2".into(),
                    name: "send_sms".into(),
                    arguments: r#"{"message":"Your ticket is 42"}"#.into()
                }
            ]
        );
        assert!(matches!(
            d.tool_finished("c2", r#"{"status":"sent"}"#).last(),
            Some(Action::AskModel { .. })
        ));
    }

    #[test]
    fn without_a_person_escalation_is_refused_to_the_model() {
        let agents = agents();
        let mut d = Dialogue::new("support", Vec::new());
        let turn = turn_of(&d.customer_says("a person please"));
        let actions = d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![call("c1", "escalate_to_human", "{}")]),
            &agents,
        );
        assert!(matches!(actions.as_slice(), [Action::AskModel { .. }]));
        assert!(d
            .history()
            .last()
            .is_some_and(|m| m.role == Role::Tool && m.content.contains("error")));
    }

    #[test]
    fn stale_or_failed_turns_and_endless_tool_loops_end_in_an_apology() {
        let agents = agents();
        let mut d = Dialogue::new("orders", Vec::new());
        let mut turn = turn_of(&d.customer_says("loop"));
        assert!(d
            .model_replied(turn + 7, ModelReply::Text("late".into()), &agents)
            .is_empty());
        let mut replies = Vec::new();
        for i in 0..MAX_STEPS {
            let actions = d.model_replied(
                turn,
                ModelReply::ToolCalls(vec![call(&format!("c{i}"), "store_hours", "{}")]),
                &agents,
            );
            assert!(matches!(actions.as_slice(), [Action::RunTool { .. }]));
            let next = d.tool_finished(&format!("c{i}"), "{}");
            match next.last() {
                Some(Action::AskModel { turn: t, .. }) => turn = *t,
                Some(Action::Reply { text }) => {
                    replies.push(text.clone());
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(replies.len(), 1, "the loop is cut off");
        assert!(!d.is_busy());
        let turn = turn_of(&d.customer_says("again"));
        let actions = d.model_failed(turn, "provider down");
        assert!(matches!(actions.as_slice(), [Action::Reply { .. }]));
    }

    #[test]
    fn context_leads_the_model_history_and_interruptions_cut_the_answer() {
        let agents = agents();
        let mut d = Dialogue::new("triage", Vec::new());
        d.set_context(Some("Earlier call: asked about order 1001.".into()));
        let actions = d.customer_says("hi");
        let Some(Action::AskModel { history, turn, .. }) = actions.last() else {
            panic!("{actions:?}");
        };
        assert_eq!(history.first().map(|m| m.role), Some(Role::System));
        let turn = *turn;
        d.model_replied(
            turn,
            ModelReply::Text("Hello there, how can I help".into()),
            &agents,
        );
        d.interrupted("Hello there");
        assert_eq!(
            d.history().last().map(|m| m.content.as_str()),
            Some("Hello there …(interrupted)")
        );
    }

    #[test]
    fn an_answer_interrupted_while_in_the_works_keeps_what_was_heard_and_no_more() {
        let agents = agents();
        let mut d = Dialogue::new("triage", Vec::new());
        let turn = turn_of(&d.customer_says("hi"));
        d.model_replied(
            turn,
            ModelReply::Text("Hello, how can I help?".into()),
            &agents,
        );
        // The next answer is still streaming when the caller talks over it.
        let turn = turn_of(&d.customer_says("where is order 1001"));
        d.interrupted("Your order ");
        assert!(!d.is_busy());
        assert!(d
            .model_replied(turn, ModelReply::Text("late".into()), &agents)
            .is_empty());
        let contents: Vec<&str> = d.history().iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            contents,
            vec![
                "hi",
                "Hello, how can I help?",
                "where is order 1001",
                "Your order …(interrupted)"
            ]
        );
        // Nothing heard of an answer in the works: nothing of it is kept.
        d.customer_says("again");
        d.interrupted("");
        assert_eq!(
            d.history().last().map(|m| m.content.as_str()),
            Some("again")
        );
    }

    #[test]
    fn abandoning_running_tools_answers_every_tool_call() {
        let agents = agents();
        let mut d = Dialogue::new("orders", Vec::new());
        let turn = turn_of(&d.customer_says("order 1001 and store hours"));
        d.model_replied(
            turn,
            ModelReply::ToolCalls(vec![
                call("c1", "lookup_order", r#"{"order_id":"1001"}"#),
                call("c2", "store_hours", "{}"),
            ]),
            &agents,
        );
        d.tool_finished("c1", r#"{"status":"shipped"}"#);
        d.abandon();
        assert!(!d.is_busy());
        assert!(
            d.tool_finished("c2", "{}").is_empty(),
            "a late result is ignored"
        );
        let answered: Vec<Option<&str>> = d
            .history()
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.tool_call_id.as_deref())
            .collect();
        assert_eq!(answered, vec![Some("c1"), Some("c2")]);
        assert!(d
            .history()
            .last()
            .is_some_and(|m| m.content.contains("abandoned")));
    }

    #[test]
    fn history_is_bounded_at_a_user_message() {
        let mut history = Vec::new();
        for i in 0..100 {
            history.push(Message::user(format!("q{i}")));
            history.push(Message::assistant(format!("a{i}")));
        }
        let mut d = Dialogue::new("triage", history);
        d.customer_says("last");
        assert!(d.history().len() <= MAX_HISTORY);
        assert_eq!(d.history().first().map(|m| m.role), Some(Role::User));
    }

    #[test]
    fn turns_past_their_time_to_live_leave_the_context() {
        let history = vec![
            Message::user("old question"),
            Message::assistant("old answer"),
            Message::user("recent question"),
            Message::assistant("recent answer"),
        ];
        let mut d = Dialogue::new("triage", history).with_user_times(vec![1_000, 9_000]);
        assert_eq!(d.forget_before(5_000), 2);
        assert_eq!(d.history().len(), 2);
        assert_eq!(d.history()[0].content, "recent question");
        let Action::AskModel { history, .. } = d.customer_says_at("now", Some(20_000)).remove(0)
        else {
            panic!("asks the model")
        };
        assert_eq!(history.len(), 3);
        d.model_replied(1, ModelReply::Text("ok".into()), &agents());
        // Everything before the newest message has expired; the newest stays.
        assert_eq!(d.forget_before(15_000), 2);
        assert_eq!(d.history()[0].content, "now");
        assert_eq!(d.forget_before(15_000), 0, "nothing more to forget");
        assert_eq!(d.forget_before(30_000), 2);
        assert!(d.history().is_empty());
        // Times unknown never expire; the lengths must agree to be taken.
        let mut d = Dialogue::new("triage", vec![Message::user("q")]).with_user_times(vec![]);
        assert_eq!(d.forget_before(u64::MAX - 1), 0);
    }
}
