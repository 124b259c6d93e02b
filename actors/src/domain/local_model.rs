//! The offline `local` model (SPEC §6.4): a deterministic stand-in for the LLM,
//! used when no `OPENAI_API_KEY` is set and inside the OpenAI emulator. All of
//! its knowledge is `agents.toml`: agent keywords route to a handoff, tool
//! keywords pick a tool, a tool's `args_regex` named groups are its arguments
//! and its `reply_template` turns the result into the answer.
//!
//! One reply per call of [`LocalModel::reply`], like a real model's turn:
//!
//! * trailing tool results → text from their reply templates (a tool error is
//!   said plainly); after a handoff the new agent either goes on with the
//!   customer's request, if one of its tools fits, or introduces itself;
//! * otherwise the customer's last message is matched: a request for a person
//!   escalates, then the best-scoring tool or handoff wins (`Candidate::rank`);
//!   a tool missing a required argument asks for it, unless the argument's
//!   description names another tool of the agent that provides it (`slot_id`
//!   "from list_slots"); `send_sms` without a dictated message texts the
//!   assistant's last answer ("text me that");
//! * a message that matches nothing, answering a question the assistant just
//!   asked, is read together with the customer's previous message, so
//!   "where is my order?" → "Could you tell me the order number?" → "1001" works;
//! * nothing matches → what the agent can do, without pretending to understand.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};
use thiserror::Error;

use super::agents::{handoff_tool_name, AgentConfig, AgentsConfig, ToolConfig};
use super::conversation::{Message, ModelReply, Role, ToolCallReq};
use super::effects::MAX_SMS_CHARS;
use super::template;
use super::tools::{ESCALATE_TO_HUMAN, SEND_SMS, TAKE_VOICEMAIL, TRANSFER_PREFIX};

/// Said when the engine asks for an agent that is not configured.
const NO_AGENT: &str = "Sorry, I can't help with that right now.";
/// How the fallback and introductions describe the model, honestly.
const WHAT_I_AM: &str = "I'm an automated assistant that understands simple requests.";
/// Inflections a keyword of at least this many bytes also matches.
const MIN_INFLECTED: usize = 4;
const SUFFIXES: [&str; 5] = ["s", "es", "d", "ed", "ing"];

#[derive(Debug, Error)]
pub enum LocalModelError {
    #[error("agents.toml: tool `{tool}`, key `args_regex`: {source}")]
    Regex {
        tool: String,
        #[source]
        source: regex::Error,
    },
}

/// The keyword model over one agents configuration, with its keywords split
/// into words and its regexes compiled once.
#[derive(Debug, Clone)]
pub struct LocalModel {
    agents: Arc<AgentsConfig>,
    tools: HashMap<String, ToolRules>,
    agent_keywords: HashMap<String, Vec<Keyword>>,
}

#[derive(Debug, Clone)]
struct ToolRules {
    keywords: Vec<Keyword>,
    args: Option<Regex>,
}

/// A keyword or phrase as lower-case words; it weighs its number of words,
/// so "where is my" says more than "order".
#[derive(Debug, Clone)]
struct Keyword(Vec<String>);

impl LocalModel {
    pub fn new(agents: impl Into<Arc<AgentsConfig>>) -> Result<Self, LocalModelError> {
        let agents = agents.into();
        let mut tools = HashMap::new();
        for tool in &agents.tools {
            let args = match &tool.args_regex {
                None => None,
                Some(pattern) => {
                    Some(
                        Regex::new(pattern).map_err(|source| LocalModelError::Regex {
                            tool: tool.name.clone(),
                            source,
                        })?,
                    )
                }
            };
            let keywords = keywords(&tool.keywords);
            tools.insert(tool.name.clone(), ToolRules { keywords, args });
        }
        let agent_keywords = agents
            .agents
            .iter()
            .map(|a| (a.name.clone(), keywords(&a.keywords)))
            .collect();
        Ok(Self {
            agents,
            tools,
            agent_keywords,
        })
    }

    /// The reply of `agent` — the agent answering now, i.e. the new one right
    /// after a handoff — to the conversation so far.
    pub fn reply(&self, agent: &str, history: &[Message]) -> ModelReply {
        self.reply_for(agent, history, &[], false)
    }

    /// [`LocalModel::reply`] for one customer on one channel: it never picks a tool in
    /// `withheld` (not offered for this customer, e.g. `send_sms` to a landline), and on a
    /// phone call (`on_call`) a caller asking to leave a message gets `take_voicemail` (when
    /// declared), which text channels never do.
    pub fn reply_for(
        &self,
        agent: &str,
        history: &[Message],
        withheld: &[String],
        on_call: bool,
    ) -> ModelReply {
        let Some(agent) = self.agents.agent(agent) else {
            return ModelReply::Text(NO_AGENT.into());
        };
        // The agent as this customer sees it: without the withheld tools.
        let offered;
        let agent = if agent.tools.iter().any(|t| withheld.contains(t)) {
            let mut narrowed = agent.clone();
            narrowed.tools.retain(|t| !withheld.contains(t));
            offered = narrowed;
            &offered
        } else {
            agent
        };
        let call_id = format!("call_{}", history.len());
        let first_result = history
            .iter()
            .rposition(|m| m.role != Role::Tool)
            .map_or(0, |i| i + 1);
        match history.get(first_result..) {
            Some(results) if !results.is_empty() => {
                self.after_tools(agent, history, results, call_id)
            }
            _ => self.answer(agent, history, call_id, on_call),
        }
    }

    /// A turn that starts from the customer's message.
    fn answer(
        &self,
        agent: &AgentConfig,
        history: &[Message],
        call_id: String,
        on_call: bool,
    ) -> ModelReply {
        let requests = requests(history);
        let routed = requests.iter().find_map(|text| {
            let voicemail = on_call
                .then(|| self.agents.tool(TAKE_VOICEMAIL))
                .flatten()
                .and_then(|tool| self.tool_candidate(tool, text, &words(text), 0));
            Some((voicemail.or_else(|| self.route(agent, text, true))?, text))
        });
        match routed {
            Some((candidate, text)) => match self.act(agent, candidate, text, history, call_id) {
                Step::Call(call) => ModelReply::ToolCalls(vec![call]),
                Step::Ask(question) => ModelReply::Text(question),
            },
            None => {
                let greeted = requests.first().is_none_or(|text| {
                    let words = words(text);
                    self.agent_keywords
                        .get(&agent.name)
                        .is_some_and(|k| hits(k, &words).is_some())
                });
                ModelReply::Text(self.fallback(agent, greeted))
            }
        }
    }

    /// A turn that starts from tool results (`results`, the tail of `history`).
    fn after_tools(
        &self,
        agent: &AgentConfig,
        history: &[Message],
        results: &[Message],
        call_id: String,
    ) -> ModelReply {
        let calls: Vec<Option<&ToolCallReq>> = results
            .iter()
            .map(|result| find_call(history, result.tool_call_id.as_deref()))
            .collect();
        let handed_off = calls
            .iter()
            .flatten()
            .any(|call| call.name.starts_with(TRANSFER_PREFIX));
        if handed_off {
            // Go on with the request if one of the new agent's tools can
            // answer it outright; never hand off again from here.
            let next = requests(history).iter().find_map(|text| {
                let candidate = self.route(agent, text, false)?;
                match self.act(agent, candidate, text, history, call_id.clone()) {
                    Step::Call(call) => Some(call),
                    Step::Ask(_) => None,
                }
            });
            return match next {
                Some(call) => ModelReply::ToolCalls(vec![call]),
                None => ModelReply::Text(self.introduce(agent)),
            };
        }
        let said: Vec<String> = results
            .iter()
            .zip(calls)
            .map(|(result, call)| self.say_result(call, &result.content))
            .collect();
        ModelReply::Text(said.join(" "))
    }

    /// The best tool or handoff for `text`, if any keyword matches. A request
    /// for a person wins outright.
    fn route<'a>(
        &'a self,
        agent: &'a AgentConfig,
        text: &str,
        handoffs: bool,
    ) -> Option<Candidate<'a>> {
        let words = words(text);
        if let Some(escalate) = self.agents.tool(ESCALATE_TO_HUMAN) {
            if let Some(candidate) = self.tool_candidate(escalate, text, &words, 0) {
                return Some(candidate);
            }
        }
        let tools = agent
            .tools
            .iter()
            .filter(|name| name.as_str() != ESCALATE_TO_HUMAN)
            .filter_map(|name| self.agents.tool(name))
            .enumerate()
            .filter_map(|(order, tool)| self.tool_candidate(tool, text, &words, order));
        let targets: &[String] = if handoffs { &agent.handoffs } else { &[] };
        let handoff_candidates = targets
            .iter()
            .filter_map(|name| self.agents.agent(name))
            .enumerate()
            .filter_map(|(order, target)| {
                let found = hits(self.agent_keywords.get(&target.name)?, &words)?;
                Some(Candidate {
                    target: Target::Handoff(target),
                    score: found.weight,
                    first: found.first,
                    order,
                })
            });
        let best = tools.chain(handoff_candidates).max_by_key(Candidate::rank);
        if best.is_some() || !handoffs {
            return best;
        }
        // Nothing here takes the request, but a tool of an agent this one hands off to
        // does (a customer with `orders` asking for opening hours): hand off there, so a
        // conversation resumed with a specialist is never stuck with it.
        targets
            .iter()
            .filter_map(|name| self.agents.agent(name))
            .enumerate()
            .filter_map(|(order, target)| {
                let found = target
                    .tools
                    .iter()
                    .filter(|name| name.as_str() != ESCALATE_TO_HUMAN)
                    .filter_map(|name| hits(&self.tools.get(name)?.keywords, &words))
                    .max_by_key(|found| found.weight)?;
                Some(Candidate {
                    target: Target::Handoff(target),
                    score: found.weight,
                    first: found.first,
                    order,
                })
            })
            .max_by_key(Candidate::rank)
    }

    fn tool_candidate<'a>(
        &'a self,
        tool: &'a ToolConfig,
        text: &str,
        words: &[String],
        order: usize,
    ) -> Option<Candidate<'a>> {
        let found = hits(&self.tools.get(&tool.name)?.keywords, words)?;
        let (args, missing) = self.extract(tool, text);
        // A required argument found in part of the message is evidence too; a
        // catch-all group that took the whole message is not.
        let evidence = required(tool)
            .filter(|name| {
                args.get(*name)
                    .and_then(Value::as_str)
                    .is_some_and(|value| value != text.trim())
            })
            .count();
        Some(Candidate {
            target: Target::Tool {
                tool,
                args,
                missing,
            },
            score: found.weight + evidence,
            first: found.first,
            order,
        })
    }

    /// The arguments `tool`'s regex finds in `text`, and the required ones it
    /// does not.
    fn extract<'a>(&self, tool: &'a ToolConfig, text: &str) -> (Map<String, Value>, Vec<&'a str>) {
        let mut args = Map::new();
        let regex = self.tools.get(&tool.name).and_then(|r| r.args.as_ref());
        if let Some(captures) = regex.and_then(|r| r.captures(text)) {
            for name in regex.into_iter().flat_map(Regex::capture_names).flatten() {
                if let Some(value) = captures.name(name).map(|m| m.as_str().trim()) {
                    if !value.is_empty() {
                        args.insert(name.to_owned(), Value::String(value.to_owned()));
                    }
                }
            }
        }
        let missing = required(tool)
            .filter(|name| !args.contains_key(*name))
            .collect();
        (args, missing)
    }

    fn act(
        &self,
        agent: &AgentConfig,
        candidate: Candidate,
        text: &str,
        history: &[Message],
        call_id: String,
    ) -> Step {
        let (tool, mut args, mut missing) = match candidate.target {
            Target::Handoff(target) => {
                return Step::Call(call(call_id, handoff_tool_name(&target.name), Map::new()))
            }
            Target::Tool {
                tool,
                args,
                missing,
            } => (tool, args, missing),
        };
        // "Text me that": the message is what the assistant just said.
        if tool.name == SEND_SMS && missing.contains(&"message") {
            let said = history
                .iter()
                .rev()
                .find(|m| m.role == Role::Assistant && !m.content.trim().is_empty());
            if let Some(said) = said {
                let message: String = said.content.chars().take(MAX_SMS_CHARS).collect();
                args.insert("message".into(), Value::String(message));
                missing.retain(|name| *name != "message");
            }
        }
        let Some(first_missing) = missing.first() else {
            return Step::Call(call(call_id, tool.name.clone(), args));
        };
        // An argument "from list_slots": call that tool first.
        let provider = param_description(tool, first_missing).and_then(|description| {
            agent
                .tools
                .iter()
                .filter(|name| **name != tool.name && description.contains(name.as_str()))
                .filter_map(|name| self.agents.tool(name))
                .map(|provider| (provider, self.extract(provider, text)))
                .find(|(_, (_, missing))| missing.is_empty())
        });
        match provider {
            Some((provider, (args, _))) => Step::Call(call(call_id, provider.name.clone(), args)),
            None => Step::Ask(question(tool, first_missing)),
        }
    }

    /// One tool result in words.
    fn say_result(&self, call: Option<&ToolCallReq>, output: &str) -> String {
        let output: Value =
            serde_json::from_str(output).unwrap_or_else(|_| Value::String(output.to_owned()));
        let tool = call.and_then(|c| self.agents.tool(&c.name));
        if let Some(error) = output.get("error") {
            let message = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned);
            // The tool wants an argument the customer has not given: ask.
            let given = call
                .and_then(|c| c.parse_arguments().ok())
                .unwrap_or_default();
            let wanted = tool.and_then(|tool| {
                parameters(tool)
                    .find(|p| message.contains(&format!("`{p}`")) && given.get(p).is_none())
                    .map(|p| question(tool, p))
            });
            return wanted.unwrap_or_else(|| {
                format!(
                    "Sorry, I couldn't do that: {}.",
                    message.trim().trim_end_matches('.')
                )
            });
        }
        let rendered = tool
            .and_then(|t| t.reply_template.as_deref())
            .map(|t| template::render(t, &output))
            .filter(|s| !s.trim().is_empty());
        let summary = || {
            output
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        rendered.or_else(summary).unwrap_or_else(|| match output {
            Value::String(text) => text,
            other => format!("Here is what I found: {other}"),
        })
    }

    /// The new agent's first words after a handoff.
    fn introduce(&self, agent: &AgentConfig) -> String {
        let mut text = format!("You're now talking to {}.", agent.name);
        if let Some(can) = self.capabilities(agent) {
            text.push(' ');
            text.push_str(&can);
        }
        text.push_str(" How can I help?");
        text
    }

    /// What the agent can do, when nothing the customer said matched.
    fn fallback(&self, agent: &AgentConfig, greeted: bool) -> String {
        let mut parts = vec![
            if greeted {
                "Hello!"
            } else {
                "Sorry, I didn't understand that."
            }
            .to_owned(),
            WHAT_I_AM.to_owned(),
        ];
        parts.extend(self.capabilities(agent));
        let handoffs: Vec<&str> = agent.handoffs.iter().map(String::as_str).collect();
        parts.push(if handoffs.is_empty() {
            "You can also ask for a person.".to_owned()
        } else {
            format!(
                "I can also put you through to {}, or to a person.",
                template::and_list(&handoffs)
            )
        });
        parts.join(" ")
    }

    /// "Here I can help with: look up an order's status; …", from the first
    /// clause of each tool's description.
    fn capabilities(&self, agent: &AgentConfig) -> Option<String> {
        let items: Vec<String> = agent
            .tools
            .iter()
            .filter(|name| name.as_str() != ESCALATE_TO_HUMAN)
            .filter_map(|name| self.agents.tool(name))
            .filter_map(|tool| first_clause(&tool.description))
            .map(|clause| to_customer(&lowercase_first(clause)))
            .collect();
        (!items.is_empty()).then(|| format!("Here I can help with: {}.", items.join("; ")))
    }
}

/// What to do about the chosen candidate.
enum Step {
    Call(ToolCallReq),
    Ask(String),
}

/// A tool or handoff whose keywords the message mentions.
struct Candidate<'a> {
    target: Target<'a>,
    /// Weight of the keywords found, plus required arguments found.
    score: usize,
    /// Word position of the earliest keyword found.
    first: usize,
    /// Position in the agent's `tools` or `handoffs` list.
    order: usize,
}

enum Target<'a> {
    Tool {
        tool: &'a ToolConfig,
        args: Map<String, Value>,
        missing: Vec<&'a str>,
    },
    Handoff(&'a AgentConfig),
}

impl Candidate<'_> {
    /// Highest wins: score; then a tool that can run now; then the agent's own
    /// tool over a handoff; then the keyword said first; then config order.
    fn rank(&self) -> (usize, bool, bool, Reverse<usize>, Reverse<usize>) {
        let (runnable, own) = match &self.target {
            Target::Tool { missing, .. } => (missing.is_empty(), true),
            Target::Handoff(_) => (true, false),
        };
        (
            self.score,
            runnable,
            own,
            Reverse(self.first),
            Reverse(self.order),
        )
    }
}

fn call(id: String, name: String, args: Map<String, Value>) -> ToolCallReq {
    ToolCallReq {
        id,
        name,
        arguments: Value::Object(args).to_string(),
    }
}

/// The texts to match, best first: the customer's last message and, when it
/// answers a question the assistant asked, that message read after the one
/// before it.
fn requests(history: &[Message]) -> Vec<Cow<'_, str>> {
    let mut users = history
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| m.role == Role::User);
    let Some((last_at, last)) = users.next() else {
        return Vec::new();
    };
    let mut texts = vec![Cow::Borrowed(last.content.as_str())];
    let asked = history
        .get(..last_at)
        .and_then(|before| {
            before
                .iter()
                .rev()
                .find(|m| m.role == Role::Assistant && !m.content.is_empty())
        })
        .is_some_and(|m| m.content.trim_end().ends_with('?'));
    if let (true, Some((_, previous))) = (asked, users.next()) {
        texts.push(Cow::Owned(format!(
            "{}\n{}",
            previous.content, last.content
        )));
    }
    texts
}

/// The call a tool result answers.
fn find_call<'h>(history: &'h [Message], id: Option<&str>) -> Option<&'h ToolCallReq> {
    let id = id?;
    history
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|call| call.id == id)
}

fn required(tool: &ToolConfig) -> impl Iterator<Item = &str> {
    tool.parameters
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn parameters(tool: &ToolConfig) -> impl Iterator<Item = &str> {
    tool.parameters
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|properties| properties.keys().map(String::as_str))
}

fn param_description<'a>(tool: &'a ToolConfig, param: &str) -> Option<&'a str> {
    tool.parameters
        .get("properties")?
        .get(param)?
        .get("description")?
        .as_str()
}

/// "Could you tell me the order number?", from the parameter's description
/// ("The order number, e.g. 1001.") or else its name.
fn question(tool: &ToolConfig, param: &str) -> String {
    let phrase = param_description(tool, param)
        .and_then(first_clause)
        .map(|clause| to_customer(&lowercase_first(clause)))
        .unwrap_or_else(|| format!("the {}", param.replace('_', " ")));
    format!("Could you tell me {phrase}?")
}

/// A description up to its first punctuation: "The order number, e.g. 1001." →
/// "The order number".
fn first_clause(description: &str) -> Option<&str> {
    description
        .split([',', '.', ';', ':', '('])
        .next()
        .map(str::trim)
        .filter(|clause| !clause.is_empty())
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Descriptions are written for the model ("the customer's phone"); said to
/// the customer they become "your phone".
fn to_customer(text: &str) -> String {
    text.replace("the customer is", "you are")
        .replace("the customer's", "your")
        .replace("the customer", "you")
}

/// Lower-case words of letters, digits, `-` and `'` (curly apostrophes
/// straightened), so "Tune-up", "can’t" and "#1001" read as `tune-up`,
/// `can't` and `1001`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'' || c == '’'))
        .map(|word| {
            word.trim_matches(['-', '\'', '’'])
                .replace('’', "'")
                .to_lowercase()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

fn keywords(configured: &[String]) -> Vec<Keyword> {
    configured
        .iter()
        .map(|k| Keyword(words(k)))
        .filter(|k| !k.0.is_empty())
        .collect()
}

/// The keywords found in a message.
struct Hits {
    weight: usize,
    first: usize,
}

fn hits(keywords: &[Keyword], words: &[String]) -> Option<Hits> {
    let found: Vec<(usize, usize)> = keywords
        .iter()
        .filter_map(|Keyword(phrase)| {
            let at = words.windows(phrase.len()).position(|window| {
                window
                    .iter()
                    .zip(phrase)
                    .all(|(word, keyword)| same_word(word, keyword))
            })?;
            Some((phrase.len(), at))
        })
        .collect();
    Some(Hits {
        weight: found.iter().map(|(weight, _)| weight).sum(),
        first: found.iter().map(|(_, at)| *at).min()?,
    })
}

/// `word` is `keyword` or, for keywords long enough not to collide (`hi` is
/// not `his`), an inflection of it: `orders`, `booked`, `booking`.
fn same_word(word: &str, keyword: &str) -> bool {
    word == keyword
        || (keyword.len() >= MIN_INFLECTED
            && word
                .strip_prefix(keyword)
                .is_some_and(|suffix| SUFFIXES.contains(&suffix)))
}

/// A reply cut into word-sized tokens for streaming, each word with the
/// whitespace after it, so the tokens concatenate back to `text`.
pub fn stream_tokens(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at_checked(word_end)?;
        let space = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        let (token, tail) = rest.split_at_checked(word.len() + space)?;
        rest = tail;
        Some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::tests::demo;
    use crate::domain::catalog::Catalog;
    use crate::domain::tools::{is_effect_tool, run_builtin, ToolContext};
    use crate::store::SledStore;
    use serde_json::json;

    const ALICE: &str = "+14155550101";

    fn real_agents() -> AgentsConfig {
        crate::domain::agents::shipped()
    }

    /// A conversation driven like the engine drives it: the model's tool calls
    /// are run against the demo catalog and a scratch store, handoffs switch
    /// the agent, and the model is asked again until it answers in text.
    struct Chat {
        model: LocalModel,
        catalog: Catalog,
        store: SledStore,
        customer: Option<&'static str>,
        agent: String,
        history: Vec<Message>,
    }

    /// What one customer message led to.
    #[derive(Debug)]
    struct Turn {
        /// `name arguments` of each tool call, in order.
        calls: Vec<String>,
        reply: String,
    }

    impl Chat {
        fn new(agent: &str, customer: Option<&'static str>) -> Self {
            Self {
                model: LocalModel::new(real_agents()).unwrap(),
                catalog: demo(),
                store: SledStore::temporary().unwrap(),
                customer,
                agent: agent.into(),
                history: vec![Message::system("instructions")],
            }
        }

        fn say(&mut self, text: &str) -> Turn {
            self.history.push(Message::user(text));
            let mut calls = Vec::new();
            for _ in 0..5 {
                let reply = self.model.reply(&self.agent, &self.history);
                self.history.push(reply.clone().into());
                let ModelReply::ToolCalls(requested) = reply else {
                    let reply = self.history.last().unwrap().content.clone();
                    return Turn { calls, reply };
                };
                for call in requested {
                    calls.push(format!("{} {}", call.name, call.arguments));
                    let output = self.run(&call);
                    self.history.push(Message::tool_result(call.id, &output));
                }
            }
            panic!("no text reply after five model calls: {calls:?}");
        }

        fn run(&mut self, call: &ToolCallReq) -> Value {
            if let Some(agent) = call.name.strip_prefix(TRANSFER_PREFIX) {
                self.agent = agent.into();
                return json!({ "assistant": agent });
            }
            // Escalation answers as the engine decides it (its `message` is the reply).
            let scope = crate::domain::effects::EffectScope {
                agents: &self.model.agents,
                agent: &self.agent,
                human_available: true,
                medium: crate::domain::effects::Medium::Voice,
                withheld: &crate::domain::effects::Withheld::default(),
            };
            if let Some(decision) =
                crate::domain::effects::decide(&call.name, &call.arguments, &scope)
            {
                return decision.output;
            }
            if is_effect_tool(&call.name) {
                return json!({ "ok": true });
            }
            let mut ctx = ToolContext {
                catalog: &self.catalog,
                customer: self.customer,
                bookings: &self.store,
                verified: &[],
                verification: false,
            };
            let args = call.parse_arguments().unwrap();
            run_builtin(&call.name, &args, &mut ctx).unwrap_or_else(|e| e.to_output())
        }
    }

    fn first_reply(agent: &str, text: &str) -> ModelReply {
        let model = LocalModel::new(real_agents()).unwrap();
        model.reply(agent, &[Message::system("x"), Message::user(text)])
    }

    #[test]
    fn a_voicemail_is_taken_on_calls_only() {
        let model = LocalModel::new(real_agents()).unwrap();
        let history = [
            Message::system("x"),
            Message::user("can I leave a message?"),
        ];
        let ModelReply::ToolCalls(calls) = model.reply_for("triage", &history, &[], true) else {
            panic!("expected take_voicemail");
        };
        assert_eq!(calls[0].name, TAKE_VOICEMAIL);
        let by_text = model.reply_for("triage", &history, &[], false);
        assert!(
            !matches!(&by_text, ModelReply::ToolCalls(calls) if calls.iter().any(|c| c.name == TAKE_VOICEMAIL)),
            "{by_text:?}"
        );
    }

    #[test]
    fn realistic_sms_exchanges() {
        // (agent, customer message, tool calls, words the reply contains)
        let table: &[(&str, &str, &[&str], &[&str])] = &[
            (
                "orders",
                "where is my order 1001?",
                &[r#"lookup_order {"order_id":"1001"}"#],
                &["Order 1001", "shipped", "UPS"],
            ),
            (
                "triage",
                "Hi, where is my order #1002?",
                &[
                    "transfer_to_orders {}",
                    r#"lookup_order {"order_id":"1002"}"#,
                ],
                &["Order 1002", "delivered"],
            ),
            (
                "triage",
                "I'd like to book a haircut",
                &["transfer_to_booking {}", "list_slots {}"],
                &["Free slots", "S101"],
            ),
            (
                "booking",
                "book slot S101 please",
                &[r#"book_appointment {"slot_id":"S101"}"#],
                &["Booked S101", "BK-S101"],
            ),
            (
                "booking",
                "book slot S3 please",
                &[r#"book_appointment {"slot_id":"S3"}"#],
                &["Sorry, I couldn't do that: there is no appointment slot S3"],
            ),
            (
                "booking",
                "Can I book a tune-up on 2026-09-15?",
                &[r#"list_slots {"date":"2026-09-15","service":"tune-up"}"#],
                &["S105: tune-up on 2026-09-15 at 09:30"],
            ),
            (
                "triage",
                "talk to a person",
                &[r#"escalate_to_human {"reason":"talk to a person"}"#],
                &["connect you with a colleague"],
            ),
            (
                "triage",
                "are you open on Sunday?",
                &[r#"store_hours {"day":"Sunday"}"#],
                &["On sunday we are"],
            ),
            (
                "triage",
                "What is your return policy?",
                &[r#"faq {"question":"What is your return policy?"}"#],
                &["return"],
            ),
            (
                "orders",
                "do you sell kids helmets?",
                &[r#"search_products {"query":"kids helmets"}"#],
                &["Found", "helmet"],
            ),
            (
                "triage",
                "I was charged twice",
                &["transfer_to_billing {}"],
                &["You're now talking to billing.", "How can I help?"],
            ),
            (
                "orders",
                "asdf qwerty",
                &[],
                &[
                    "Sorry, I didn't understand that.",
                    "automated assistant",
                    "look up an order's status",
                    "send a text message to your phone",
                    "billing, support, booking and triage",
                ],
            ),
            (
                "triage",
                "hi",
                &[],
                &["Hello!", "opening hours of the store"],
            ),
        ];
        for (agent, text, calls, said) in table {
            let turn = Chat::new(agent, Some(ALICE)).say(text);
            assert_eq!(&turn.calls, calls, "{agent}: {text:?}");
            for words in *said {
                assert!(
                    turn.reply.contains(words),
                    "{agent}: {text:?} → {:?} lacks {words:?}",
                    turn.reply
                );
            }
        }
    }

    #[test]
    fn a_missing_argument_is_asked_for_and_the_answer_used() {
        // Web chat: no phone number, so the order must be named.
        let mut chat = Chat::new("orders", None);
        let turn = chat.say("where is my order?");
        assert_eq!(turn.calls, vec!["lookup_order {}"]);
        assert_eq!(turn.reply, "Could you tell me the order number?");
        let turn = chat.say("it's 1002");
        assert_eq!(turn.calls, vec![r#"lookup_order {"order_id":"1002"}"#]);
        assert!(turn.reply.contains("delivered"), "{}", turn.reply);
        // Once answered, an unrelated message is not read with the old one.
        let turn = chat.say("thanks");
        assert!(turn.calls.is_empty());
        assert!(turn.reply.starts_with("Sorry, I didn't understand that."));
    }

    #[test]
    fn a_required_argument_without_a_provider_is_asked_for() {
        assert_eq!(
            first_reply("orders", "I'd like to buy"),
            ModelReply::Text("Could you tell me what you are looking for?".into())
        );
        assert_eq!(
            first_reply("orders", "please text me"),
            ModelReply::Text("Could you tell me the text to send?".into())
        );
    }

    #[test]
    fn booking_then_cancelling() {
        let mut chat = Chat::new("booking", Some(ALICE));
        let turn = chat.say("please book S102, my name is Alice");
        assert_eq!(
            turn.calls,
            vec![r#"book_appointment {"name":"Alice","slot_id":"S102"}"#]
        );
        let turn = chat.say("I need to cancel my tune-up appointment");
        assert_eq!(turn.calls, vec!["cancel_appointment {}"]);
        assert!(turn.reply.starts_with("Cancelled S102"), "{}", turn.reply);
    }

    #[test]
    fn tool_errors_are_said_plainly() {
        let mut chat = Chat::new("orders", Some("+19995550000"));
        let turn = chat.say("where is my order 1001?");
        assert!(
            turn.reply.starts_with(
                "Sorry, I couldn't do that: order 1001 was placed from a different phone number"
            ),
            "{}",
            turn.reply
        );
        assert!(turn.reply.ends_with("from that number."));
    }

    #[test]
    fn own_tools_beat_handoffs_and_handoffs_do_not_chain() {
        // "order" is both a billing tool keyword and the orders agent's.
        assert!(matches!(
            first_reply("billing", "what did order 1001 cost?"),
            ModelReply::ToolCalls(calls) if calls[0].name == "lookup_order"
        ));
        // A handoff back to triage for a "hi" loses to the request itself.
        assert!(matches!(
            first_reply("orders", "hi, where is my package?"),
            ModelReply::ToolCalls(calls) if calls[0].name == "lookup_order"
        ));
        // After a handoff the new agent does not hand off again.
        let mut chat = Chat::new("triage", Some(ALICE));
        let turn = chat.say("my bike is broken");
        assert_eq!(turn.calls, vec!["transfer_to_support {}"]);
        assert!(turn.reply.starts_with("You're now talking to support."));
    }

    #[test]
    fn a_request_only_another_agents_tool_takes_hands_off_there() {
        // A conversation resumed with `orders` (SPEC §15, text channels) asks for hours.
        let turn =
            Chat::new("orders", Some(ALICE)).say("And what are your opening hours on Saturday?");
        assert_eq!(
            turn.calls.first().map(String::as_str),
            Some("transfer_to_support {}")
        );
        assert!(
            turn.calls
                .get(1)
                .is_some_and(|c| c.starts_with("store_hours")),
            "{:?}",
            turn.calls
        );
        assert!(
            turn.reply.to_lowercase().contains("saturday"),
            "{}",
            turn.reply
        );
    }

    #[test]
    fn tool_results_without_a_template_or_call() {
        let model = LocalModel::new(real_agents()).unwrap();
        let history = |output: &Value| {
            vec![
                Message::user("hi"),
                ModelReply::ToolCalls(vec![ToolCallReq {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: "{}".into(),
                }])
                .into(),
                Message::tool_result("call_1", output),
            ]
        };
        let reply = |output: Value| model.reply("triage", &history(&output));
        assert_eq!(
            reply(json!({"summary": "Sunny."})),
            ModelReply::Text("Sunny.".into())
        );
        assert_eq!(
            reply(json!({"temp_f": 54})),
            ModelReply::Text(r#"Here is what I found: {"temp_f":54}"#.into())
        );
        assert_eq!(
            reply(json!({"error": {"code": 500}})),
            ModelReply::Text(r#"Sorry, I couldn't do that: {"code":500}."#.into())
        );
        // Parallel results (from a real model earlier) are all read out.
        let mut parallel = history(&json!({"summary": "One."}));
        parallel.push(Message::tool_result("call_x", &json!("Two.")));
        assert_eq!(
            model.reply("triage", &parallel),
            ModelReply::Text("One. Two.".into())
        );
    }

    #[test]
    fn unknown_agents_and_empty_histories() {
        let model = LocalModel::new(real_agents()).unwrap();
        assert_eq!(
            model.reply("nobody", &[]),
            ModelReply::Text(NO_AGENT.into())
        );
        let ModelReply::Text(greeting) = model.reply("triage", &[]) else {
            panic!("expected text");
        };
        assert!(greeting.starts_with("Hello!"), "{greeting}");
    }

    #[test]
    fn deterministic() {
        let history = [
            Message::system("x"),
            Message::user("I'd like to book a fitting"),
        ];
        let a = LocalModel::new(real_agents()).unwrap();
        let b = LocalModel::new(real_agents()).unwrap();
        let first = a.reply("booking", &history);
        for _ in 0..3 {
            assert_eq!(a.reply("booking", &history), first);
            assert_eq!(b.reply("booking", &history), first);
        }
        assert_eq!(
            first,
            ModelReply::ToolCalls(vec![ToolCallReq {
                id: "call_2".into(),
                name: "list_slots".into(),
                arguments: r#"{"service":"fitting"}"#.into(),
            }])
        );
    }

    #[test]
    fn keywords_match_words_and_their_inflections() {
        let phrase = |k: &str| vec![Keyword(words(k))];
        let found =
            |k: &str, text: &str| hits(&phrase(k), &words(text)).map(|h| (h.weight, h.first));
        assert_eq!(found("order", "My ORDERS, please"), Some((1, 1)));
        assert_eq!(found("book", "I booked it"), Some((1, 1)));
        assert_eq!(found("hi", "this is his"), None);
        assert_eq!(found("where is my", "so where is my bike"), Some((3, 1)));
        assert_eq!(found("can't make it", "I can’t make it"), Some((3, 1)));
        assert_eq!(found("tune-up", "a Tune-up!"), Some((1, 1)));
        assert_eq!(
            words("#1001 'quoted' e-bike"),
            vec!["1001", "quoted", "e-bike"]
        );
    }

    #[test]
    fn a_bad_regex_is_reported_with_its_tool() {
        let mut agents = real_agents();
        agents.tools[0].args_regex = Some("(?P<order_id>".into());
        let err = LocalModel::new(agents).unwrap_err().to_string();
        assert!(
            err.starts_with("agents.toml: tool `lookup_order`, key `args_regex`"),
            "{err}"
        );
    }

    #[test]
    fn tokens_concatenate_back_to_the_text() {
        for text in [
            "",
            "Hello",
            "Order 1001 is  shipped.\nThanks! ",
            " café — ok",
        ] {
            let tokens: Vec<&str> = stream_tokens(text).collect();
            assert_eq!(tokens.concat(), text);
            assert!(tokens.iter().all(|t| !t.is_empty()));
        }
        assert_eq!(
            stream_tokens("Order 1001 is  shipped.").collect::<Vec<_>>(),
            vec!["Order ", "1001 ", "is  ", "shipped."]
        );
    }
}
