//! OpenAI: the GA Realtime interface (client and server events).

pub mod chat;
pub mod realtime;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// For error fields OpenAI fills with a string or null (`type`, `code`, `param`) and
/// compatible servers with other things (`"code": 429`, `"param": ["messages"]`): null is
/// `None`, a string is itself, anything else its JSON text — so one odd field never makes
/// a whole error unreadable.
pub(crate) fn lenient_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

/// [`lenient_text`] for a field that is text even when absent (null is empty).
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    lenient_text(deserializer).map(Option::unwrap_or_default)
}
