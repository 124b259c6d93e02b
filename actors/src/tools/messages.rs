//! Tool runs asked of and reported by the `ToolExecutor`.

use actix::Message;

/// Run tool `name` with the model's JSON `arguments` for the call `call_id` (the model's
/// function-call id, quoted back in the result).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTool {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    /// The agent active when the model asked (a promised call back is placed with it).
    pub agent: Option<String>,
}

/// The tool's output for the model: its JSON result, or `{"error": ...}`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToolFinished {
    pub call_id: String,
    pub name: String,
    pub output: String,
    pub ok: bool,
}
