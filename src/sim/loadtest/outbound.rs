//! `--outbound N`: the load is N calls the server places (`POST /calls`) through the
//! simulated Calls API (`sim::twilio::api`); each is answered as Twilio would — the call's
//! signed `Url` fetched, its stream opened — and then runs the same scripted caller as an
//! incoming call, so the report is the same.

use crate::sim::twilio::api::CallsApiHandle;
use crate::sim::twilio::{run_answered_call, CallPlan, CallReport, SimError};

/// Asks the server at `target` to call `plan.from`, then answers that call with `plan`.
pub(super) async fn call(
    target: &str,
    mut plan: CallPlan,
    api: &CallsApiHandle,
) -> Result<CallReport, SimError> {
    let url = format!("{}/calls", target.trim_end_matches('/'));
    let failed = |reason: String| SimError::Webhook {
        url: url.clone(),
        reason,
    };
    let mut response = awc::Client::default()
        .post(&url)
        .send_json(&serde_json::json!({"to": plan.from, "reason": "a load test call"}))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let body = response
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(sid) = answer["call_sid"]
        .as_str()
        .filter(|_| response.status().is_success())
    else {
        return Err(SimError::WebhookStatus {
            url,
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    };
    // The create request reached the simulated API before the server answered us.
    let placed = api
        .take(sid)
        .ok_or_else(|| failed(format!("the Calls API never saw {sid}")))?;
    plan.call_sid = placed.call_sid.clone();
    plan.from = placed.field("From").unwrap_or_default().to_owned();
    plan.to = placed.field("To").unwrap_or_default().to_owned();
    let answer_url = placed.field("Url").unwrap_or_default().to_owned();
    run_answered_call(&answer_url, plan).await
}
