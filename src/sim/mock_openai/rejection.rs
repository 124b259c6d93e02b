//! Refusals of client events, worded like the real server's `error` events.

use serde_json::Value;

/// Why a client event was refused; becomes an `error` event.
#[derive(Debug)]
pub(super) struct Rejection {
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        Rejection {
            code,
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub fn missing(param: &str) -> Self {
        Rejection::new(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    pub fn invalid_type(param: &str, expected: &str, got: &Value) -> Self {
        Rejection::new(
            "invalid_type",
            format!(
                "Invalid type for '{param}': expected {expected}, but got {} instead.",
                json_kind(got)
            ),
            Some(param),
        )
    }

    pub fn unknown_parameter(param: &str) -> Self {
        Rejection::new(
            "unknown_parameter",
            format!("Unknown parameter: '{param}'."),
            Some(param),
        )
    }

    pub fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Rejection::new("invalid_value", message, Some(param))
    }
}

/// How JSON values are named in OpenAI's type errors ("a string", "an object", …).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn required_str<'a>(
    object: &'a Value,
    name: &str,
    param: &str,
) -> Result<&'a str, Rejection> {
    match object.get(name) {
        None | Some(Value::Null) => Err(Rejection::missing(param)),
        Some(value) => value
            .as_str()
            .ok_or_else(|| Rejection::invalid_type(param, "a string", value)),
    }
}
