//! Agents, their tools and handoffs, as configured in `config/agents.toml`
//! (SPEC §6).
//!
//! Handoffs are exposed to the model as function tools named
//! `transfer_to_<agent>` (openai-protocols.md §7.2), and every agent may call
//! `escalate_to_human`. The `keywords`, `args_regex` and `reply_template` fields
//! drive the offline `local` model (SPEC §6.4); [`AgentsConfig::validate`] checks
//! all of it at start-up so a typo stops the server with the agent or tool and
//! key that is wrong.

use std::collections::HashSet;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use super::effects;
use super::template;
use super::tools::{is_builtin, ESCALATE_TO_HUMAN, TAKE_VOICEMAIL, TRANSFER_PREFIX};

/// Timeout of an HTTP tool that does not set `timeout_ms` is the engine's
/// tool timeout; this bounds what a config may ask for.
const MAX_HTTP_TIMEOUT_MS: u64 = 120_000;

/// Function names are limited to 64 characters by the OpenAI APIs.
const MAX_FUNCTION_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AgentsError {
    #[error("agents.toml: key `{key}`: {problem}")]
    Top { key: &'static str, problem: String },
    #[error("agents.toml: agent `{agent}`, key `{key}`: {problem}")]
    Agent {
        agent: String,
        key: &'static str,
        problem: String,
    },
    #[error("agents.toml: tool `{tool}`, key `{key}`: {problem}")]
    Tool {
        tool: String,
        key: &'static str,
        problem: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    pub default_agent: String,
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// snake_case: it becomes part of the `transfer_to_<name>` tool name.
    pub name: String,
    pub instructions: String,
    /// Realtime voice; kept for the whole call (it cannot change after audio).
    pub voice: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub handoffs: Vec<String>,
    /// Tells other agents when to hand off to this one.
    #[serde(default)]
    pub handoff_description: String,
    /// Words that make the local model route a message to this agent.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawToolConfig")]
pub struct ToolConfig {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    pub parameters: Value,
    pub kind: ToolKind,
    /// Words that make the local model pick this tool.
    pub keywords: Vec<String>,
    /// A regex whose named groups are the arguments the local model extracts
    /// from the customer's message, e.g. `(?i)order\s*#?(?P<order_id>\d+)`.
    pub args_regex: Option<String>,
    /// The local model's reply, filled from the tool result (see [`template`]).
    pub reply_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolKind {
    /// Implemented in the engine (`domain::tools` or an effect of the call).
    Builtin,
    /// The arguments are POSTed as JSON to `url`; the JSON response is the output.
    Http {
        url: String,
        /// `None`: the engine's tool timeout.
        timeout_ms: Option<u64>,
        /// Name of the environment variable holding a bearer token (never the token).
        secret_env: Option<String>,
    },
}

/// The TOML shape of a tool: `kind = "http"` with `url` etc. beside it, and
/// `kind` defaulting to builtin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolConfig {
    name: String,
    description: String,
    /// `None` for the engine-defined tools, whose schema is fixed ([`effects::schema`]).
    parameters: Option<Value>,
    #[serde(default)]
    kind: RawKind,
    url: Option<String>,
    timeout_ms: Option<u64>,
    secret_env: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    args_regex: Option<String>,
    reply_template: Option<String>,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    #[default]
    Builtin,
    Http,
}

impl TryFrom<RawToolConfig> for ToolConfig {
    type Error = String;

    fn try_from(raw: RawToolConfig) -> Result<Self, String> {
        let kind = match raw.kind {
            RawKind::Http => ToolKind::Http {
                url: raw
                    .url
                    .ok_or_else(|| format!("tool `{}`: kind = \"http\" needs `url`", raw.name))?,
                timeout_ms: raw.timeout_ms,
                secret_env: raw.secret_env,
            },
            RawKind::Builtin => {
                if raw.url.is_some() || raw.timeout_ms.is_some() || raw.secret_env.is_some() {
                    return Err(format!(
                        "tool `{}`: `url`, `timeout_ms` and `secret_env` need kind = \"http\"",
                        raw.name
                    ));
                }
                ToolKind::Builtin
            }
        };
        // The engine reads the arguments of its own effect tools, so it also writes their
        // schema: what the model is shown is what the code reads.
        let parameters = match (effects::schema(&raw.name), raw.parameters) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "tool `{}`: its `parameters` are defined by the engine; remove the key",
                    raw.name
                ))
            }
            (Some(engine), None) => engine,
            (None, given) => given.unwrap_or_else(empty_object_schema),
        };
        Ok(ToolConfig {
            name: raw.name,
            description: raw.description,
            parameters,
            kind,
            keywords: raw.keywords,
            args_regex: raw.args_regex,
            reply_template: raw.reply_template,
        })
    }
}

fn empty_object_schema() -> Value {
    json!({ "type": "object", "properties": {}, "required": [], "additionalProperties": false })
}

/// A function tool as the model sees it; the actor converts it to the wire type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionTool {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// The tool name that hands off to `agent`.
pub fn handoff_tool_name(agent: &str) -> String {
    format!("{TRANSFER_PREFIX}{agent}")
}

impl AgentsConfig {
    /// Checks references and syntax; the first problem found is returned.
    pub fn validate(&self) -> Result<(), AgentsError> {
        if self.agents.is_empty() {
            return Err(AgentsError::Top {
                key: "agents",
                problem: "no agent is defined".into(),
            });
        }
        let mut agent_names = HashSet::new();
        for agent in &self.agents {
            check_agent_name(&agent.name)?;
            if !agent_names.insert(agent.name.as_str()) {
                return Err(agent_error(agent, "name", "is defined twice"));
            }
        }
        if !agent_names.contains(self.default_agent.as_str()) {
            return Err(AgentsError::Top {
                key: "default_agent",
                problem: format!("`{}` is not a defined agent", self.default_agent),
            });
        }
        let mut tool_names = HashSet::new();
        for tool in &self.tools {
            check_tool(tool)?;
            if !tool_names.insert(tool.name.as_str()) {
                return Err(tool_error(tool, "name", "is defined twice".into()));
            }
        }
        for agent in &self.agents {
            check_agent(agent, &agent_names, &tool_names)?;
        }
        Ok(())
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn tool(&self, name: &str) -> Option<&ToolConfig> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// The agent a `transfer_to_<agent>` tool call hands off to, if `tool_name`
    /// is one and the agent exists.
    pub fn handoff_target(&self, tool_name: &str) -> Option<&AgentConfig> {
        self.agent(tool_name.strip_prefix(TRANSFER_PREFIX)?)
    }

    /// The tools `agent` offers the model: its own tools, one
    /// `transfer_to_<name>` per handoff, and `escalate_to_human`. Empty for an
    /// unknown agent.
    pub fn function_tools(&self, agent: &str) -> Vec<FunctionTool> {
        let Some(agent) = self.agent(agent) else {
            return Vec::new();
        };
        let mut tools: Vec<FunctionTool> = agent
            .tools
            .iter()
            .filter(|name| name.as_str() != ESCALATE_TO_HUMAN && name.as_str() != TAKE_VOICEMAIL)
            .filter_map(|name| self.tool(name))
            .map(|tool| FunctionTool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            })
            .collect();
        tools.extend(
            agent
                .handoffs
                .iter()
                .filter_map(|name| self.agent(name))
                .map(|target| FunctionTool {
                    name: handoff_tool_name(&target.name),
                    description: format!(
                        "Handoff to the {} agent to handle the request. {}",
                        target.name, target.handoff_description
                    )
                    .trim_end()
                    .to_owned(),
                    parameters: empty_object_schema(),
                }),
        );
        tools.push(self.escalation_tool());
        tools
    }

    /// The tools `agent` offers on a call: [`AgentsConfig::function_tools`] and, when
    /// `take_voicemail` is declared in `[[tools]]`, that one too (a caller can leave a
    /// message; there is no recording on text channels).
    pub fn voice_tools(&self, agent: &str) -> Vec<FunctionTool> {
        let mut tools = self.function_tools(agent);
        if tools.is_empty() {
            return tools;
        }
        if let Some(tool) = self.tool(TAKE_VOICEMAIL) {
            tools.push(FunctionTool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            });
        }
        tools
    }

    /// `escalate_to_human` as configured, or a sensible default.
    fn escalation_tool(&self) -> FunctionTool {
        match self.tool(ESCALATE_TO_HUMAN) {
            Some(tool) => FunctionTool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            },
            None => FunctionTool {
                name: ESCALATE_TO_HUMAN.into(),
                description: "Transfer the customer to a human colleague, when they ask for \
                              a person or you cannot help."
                    .into(),
                parameters: effects::schema(ESCALATE_TO_HUMAN).unwrap_or_else(empty_object_schema),
            },
        }
    }
}

fn agent_error(agent: &AgentConfig, key: &'static str, problem: impl Into<String>) -> AgentsError {
    AgentsError::Agent {
        agent: agent.name.clone(),
        key,
        problem: problem.into(),
    }
}

fn tool_error(tool: &ToolConfig, key: &'static str, problem: String) -> AgentsError {
    AgentsError::Tool {
        tool: tool.name.clone(),
        key,
        problem,
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_agent_name(name: &str) -> Result<(), AgentsError> {
    if !is_identifier(name) || handoff_tool_name(name).len() > MAX_FUNCTION_NAME {
        return Err(AgentsError::Agent {
            agent: name.to_owned(),
            key: "name",
            problem: format!(
                "must be snake_case (a-z, 0-9, _) and at most {} characters",
                MAX_FUNCTION_NAME - TRANSFER_PREFIX.len()
            ),
        });
    }
    Ok(())
}

fn check_agent(
    agent: &AgentConfig,
    agents: &HashSet<&str>,
    tools: &HashSet<&str>,
) -> Result<(), AgentsError> {
    if agent.instructions.trim().is_empty() {
        return Err(agent_error(agent, "instructions", "is empty"));
    }
    if agent.voice.trim().is_empty() {
        return Err(agent_error(agent, "voice", "is empty"));
    }
    for tool in &agent.tools {
        if !tools.contains(tool.as_str()) && tool != ESCALATE_TO_HUMAN {
            return Err(agent_error(
                agent,
                "tools",
                format!("unknown tool `{tool}` (define it in a [[tools]] table)"),
            ));
        }
    }
    for target in &agent.handoffs {
        if !agents.contains(target.as_str()) {
            return Err(agent_error(
                agent,
                "handoffs",
                format!("unknown agent `{target}`"),
            ));
        }
        if *target == agent.name {
            return Err(agent_error(
                agent,
                "handoffs",
                "an agent cannot hand off to itself",
            ));
        }
    }
    Ok(())
}

fn check_tool(tool: &ToolConfig) -> Result<(), AgentsError> {
    if !is_identifier(&tool.name) || tool.name.len() > MAX_FUNCTION_NAME {
        return Err(tool_error(
            tool,
            "name",
            format!("must be snake_case (a-z, 0-9, _) and at most {MAX_FUNCTION_NAME} characters"),
        ));
    }
    if tool.name.starts_with(TRANSFER_PREFIX) {
        return Err(tool_error(
            tool,
            "name",
            format!("`{TRANSFER_PREFIX}…` names are reserved for handoffs"),
        ));
    }
    if tool.description.trim().is_empty() {
        return Err(tool_error(tool, "description", "is empty".into()));
    }
    let properties = schema_properties(&tool.parameters)
        .map_err(|problem| tool_error(tool, "parameters", problem))?;
    match &tool.kind {
        ToolKind::Builtin if !is_builtin(&tool.name) => {
            return Err(tool_error(
                tool,
                "kind",
                "no built-in tool has this name; set kind = \"http\" with a `url`".into(),
            ))
        }
        ToolKind::Builtin => {}
        ToolKind::Http {
            url,
            timeout_ms,
            secret_env,
        } => {
            let parsed =
                url::Url::parse(url).map_err(|e| tool_error(tool, "url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(tool_error(
                    tool,
                    "url",
                    "must be an http or https URL".into(),
                ));
            }
            if timeout_ms.is_some_and(|t| t == 0 || t > MAX_HTTP_TIMEOUT_MS) {
                return Err(tool_error(
                    tool,
                    "timeout_ms",
                    format!("must be between 1 and {MAX_HTTP_TIMEOUT_MS}"),
                ));
            }
            if secret_env
                .as_deref()
                .is_some_and(|name| name.trim().is_empty())
            {
                return Err(tool_error(tool, "secret_env", "is empty".into()));
            }
        }
    }
    if let Some(pattern) = &tool.args_regex {
        let regex =
            Regex::new(pattern).map_err(|e| tool_error(tool, "args_regex", e.to_string()))?;
        if let Some(group) = regex
            .capture_names()
            .flatten()
            .find(|group| !properties.contains(group))
        {
            return Err(tool_error(
                tool,
                "args_regex",
                format!("named group `{group}` is not a parameter of the tool"),
            ));
        }
    }
    if let Some(reply) = &tool.reply_template {
        template::placeholders(reply)
            .map_err(|problem| tool_error(tool, "reply_template", problem))?;
    }
    Ok(())
}

/// The property names of an object schema.
fn schema_properties(schema: &Value) -> Result<Vec<&str>, String> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("must be a JSON schema with type = \"object\"".into());
    }
    match schema.get("properties") {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map.keys().map(String::as_str).collect()),
        Some(_) => Err("`properties` must be a table".into()),
    }
}

/// The agents the product ships (`config/agents.toml`), for tests.
#[cfg(test)]
pub(crate) fn shipped() -> AgentsConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agents.toml");
    let text = std::fs::read_to_string(path).expect("agents.toml");
    toml::from_str(&text).expect("agents.toml parses")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tools::{BUILTIN_TOOLS, PURE_TOOLS};
    use std::path::Path;

    fn real() -> AgentsConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agents.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        toml::from_str(&text).unwrap()
    }

    fn parse(text: &str) -> Result<AgentsConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
        default_agent = "triage"
        [[agents]]
        name = "triage"
        instructions = "Help."
        voice = "marin"
        tools = ["faq"]
        handoffs = ["billing"]
        [[agents]]
        name = "billing"
        instructions = "Bill."
        voice = "marin"
        handoff_description = "Invoices and refunds."
        [[tools]]
        name = "faq"
        description = "Answers common questions."
        parameters = { type = "object", properties = { question = { type = "string" } }, required = ["question"] }
        args_regex = '(?P<question>.+)'
        reply_template = "{answer}"
    "#;

    #[test]
    fn the_shipped_agents_toml_is_valid() {
        let config = real();
        config.validate().unwrap();
        assert_eq!(config.default_agent, "triage");
        let triage = config.agent("triage").unwrap();
        for specialist in ["orders", "billing", "support", "booking"] {
            assert!(
                triage.handoffs.iter().any(|h| h == specialist),
                "{specialist}"
            );
        }
        for name in BUILTIN_TOOLS {
            let tool = config
                .tool(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(!tool.keywords.is_empty(), "{name} has no keywords");
            assert!(
                tool.reply_template.is_some(),
                "{name} has no reply_template"
            );
        }
        // Every pure tool is offered by some agent.
        for name in PURE_TOOLS {
            assert!(
                config
                    .agents
                    .iter()
                    .any(|a| a.tools.iter().any(|t| t == name)),
                "{name}"
            );
        }
    }

    #[test]
    fn function_tools_include_handoffs_and_escalation() {
        let config = parse(MINIMAL).unwrap();
        config.validate().unwrap();
        let names: Vec<String> = config
            .function_tools("triage")
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            names,
            vec!["faq", "transfer_to_billing", "escalate_to_human"]
        );
        let handoff = &config.function_tools("triage")[1];
        assert_eq!(
            handoff.description,
            "Handoff to the billing agent to handle the request. Invoices and refunds."
        );
        assert_eq!(handoff.parameters["properties"], json!({}));
        assert!(config.function_tools("nobody").is_empty());
        assert_eq!(
            config.handoff_target("transfer_to_billing").unwrap().name,
            "billing"
        );
        assert!(config.handoff_target("transfer_to_nobody").is_none());
        assert!(config.handoff_target("faq").is_none());
    }

    #[test]
    fn the_real_escalation_tool_is_used_once() {
        let config = real();
        let tools = config.function_tools("orders");
        let escalations = tools.iter().filter(|t| t.name == ESCALATE_TO_HUMAN).count();
        assert_eq!(escalations, 1);
        assert_eq!(
            tools.last().map(|t| &t.description),
            config.tool(ESCALATE_TO_HUMAN).map(|t| &t.description)
        );
    }

    fn error_of(edit: Breakage) -> String {
        let mut config = parse(MINIMAL).unwrap();
        edit(&mut config);
        config.validate().unwrap_err().to_string()
    }

    /// A change that makes the minimal config invalid.
    type Breakage = fn(&mut AgentsConfig);

    #[test]
    fn validation_names_the_agent_or_tool_and_the_key() {
        let cases: Vec<(Breakage, &str)> = vec![
            (
                |c| c.agents[0].tools.push("nope".into()),
                "agent `triage`, key `tools`: unknown tool `nope`",
            ),
            (
                |c| c.agents[0].handoffs.push("nobody".into()),
                "agent `triage`, key `handoffs`: unknown agent `nobody`",
            ),
            (
                |c| c.agents[1].handoffs.push("billing".into()),
                "agent `billing`, key `handoffs`: an agent cannot hand off to itself",
            ),
            (
                |c| c.agents[1].name = "triage".into(),
                "agent `triage`, key `name`: is defined twice",
            ),
            (
                |c| c.agents[1].name = "Billing Agent".into(),
                "agent `Billing Agent`, key `name`",
            ),
            (
                |c| c.default_agent = "boss".into(),
                "key `default_agent`: `boss` is not a defined agent",
            ),
            (
                |c| c.tools[0].args_regex = Some("(?P<question>".into()),
                "tool `faq`, key `args_regex`",
            ),
            (
                |c| c.tools[0].args_regex = Some("(?P<q>.+)".into()),
                "named group `q` is not a parameter",
            ),
            (
                |c| c.tools[0].reply_template = Some("{answer".into()),
                "tool `faq`, key `reply_template`",
            ),
            (
                |c| c.tools[0].parameters = json!({"type": "string"}),
                "tool `faq`, key `parameters`",
            ),
            (
                |c| c.tools.push(c.tools[0].clone()),
                "tool `faq`, key `name`: is defined twice",
            ),
            (
                |c| c.tools[0].name = "weather".into(),
                "tool `weather`, key `kind`",
            ),
            (
                |c| c.tools[0].name = "transfer_to_x".into(),
                "reserved for handoffs",
            ),
            (
                |c| c.agents[0].instructions = " ".into(),
                "agent `triage`, key `instructions`: is empty",
            ),
            (|c| c.agents.clear(), "key `agents`: no agent is defined"),
        ];
        for (edit, expected) in cases {
            let err = error_of(edit);
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
            assert!(err.starts_with("agents.toml: "), "{err}");
        }
    }

    #[test]
    fn http_tools() {
        let http = |extra: &str| {
            parse(&format!(
                "{MINIMAL}\n[[tools]]\nname = \"weather\"\ndescription = \"Weather.\"\n{extra}"
            ))
        };
        let config = http("kind = \"http\"\nurl = \"https://example.com/w\"\ntimeout_ms = 2000\nsecret_env = \"WEATHER_TOKEN\"").unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.tool("weather").unwrap().kind,
            ToolKind::Http {
                url: "https://example.com/w".into(),
                timeout_ms: Some(2000),
                secret_env: Some("WEATHER_TOKEN".into()),
            }
        );
        // The default parameters are an empty object schema.
        assert_eq!(config.tool("weather").unwrap().parameters["type"], "object");

        let err = http("kind = \"http\"").unwrap_err();
        assert!(err.contains("needs `url`"), "{err}");
        let err = http("url = \"https://example.com\"").unwrap_err();
        assert!(err.contains("need kind = \"http\""), "{err}");
        let err = http("kind = \"ftp\"").unwrap_err();
        assert!(err.contains("ftp"), "{err}");
        let bad_url = http("kind = \"http\"\nurl = \"ftp://example.com\"").unwrap();
        assert!(bad_url
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tool `weather`, key `url`"));
        let bad_timeout = http("kind = \"http\"\nurl = \"http://x\"\ntimeout_ms = 0").unwrap();
        assert!(bad_timeout
            .validate()
            .unwrap_err()
            .to_string()
            .contains("key `timeout_ms`"));
    }

    #[test]
    fn unknown_keys_are_rejected_by_the_parser() {
        let err = parse(&MINIMAL.replace(
            "voice = \"marin\"\n        tools",
            "voise = \"marin\"\n        tools",
        ))
        .unwrap_err();
        assert!(err.contains("voise"), "{err}");
        let err = parse(&format!("{MINIMAL}\nkeywrods = []")).unwrap_err();
        assert!(err.contains("keywrods"), "{err}");
    }

    #[test]
    fn shipped_regexes_extract_their_arguments() {
        let config = real();
        let extract = |tool: &str, text: &str, group: &str| -> Option<String> {
            let regex = Regex::new(config.tool(tool)?.args_regex.as_deref()?).ok()?;
            Some(regex.captures(text)?.name(group)?.as_str().to_owned())
        };
        assert_eq!(
            extract("lookup_order", "where is my order #1004?", "order_id").as_deref(),
            Some("1004")
        );
        assert_eq!(
            extract(
                "book_appointment",
                "please book slot S103 for me",
                "slot_id"
            )
            .as_deref(),
            Some("S103")
        );
        assert_eq!(
            extract("store_hours", "are you open on Sunday", "day").as_deref(),
            Some("Sunday")
        );
    }
}
