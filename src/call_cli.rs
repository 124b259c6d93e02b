//! `switchboard call +14155550101 --agent booking --reason "…"`: places a call through a
//! running server's `POST /calls`, with the admin token when one is given.

/// What to ask the server for.
pub struct CallOrder<'a> {
    /// The server's origin, e.g. `http://127.0.0.1:8080`.
    pub target: &'a str,
    pub token: Option<&'a str>,
    pub to: &'a str,
    pub agent: Option<&'a str>,
    pub reason: &'a str,
    pub machine_detection: bool,
}

/// Asks the server to place the call; returns its SID, or the server's one-line reason.
pub async fn place(order: &CallOrder<'_>) -> anyhow::Result<String> {
    let url = format!("{}/calls", order.target.trim_end_matches('/'));
    let mut request = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish()
        .post(&url);
    if let Some(token) = order.token.filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send_json(&serde_json::json!({
            "to": order.to,
            "agent": order.agent,
            "reason": order.reason,
            "machine_detection": order.machine_detection,
        }))
        .await
        .map_err(|err| anyhow::anyhow!("{url}: {err}"))?;
    let body = response
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|err| anyhow::anyhow!("{url}: {err}"))?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match answer["call_sid"].as_str() {
        Some(sid) if response.status().is_success() => Ok(sid.to_owned()),
        _ => {
            let reason = answer["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
            anyhow::bail!("{} {reason}", response.status().as_u16())
        }
    }
}
