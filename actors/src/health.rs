//! Process health for `/health`: reasons the service is degraded, set where they are found.

use std::sync::Mutex;

static MODEL_AUTH: Mutex<Option<String>> = Mutex::new(None);

/// The model refused our key: `/health` turns 503 until a socket is accepted again.
pub fn model_auth_failed(reason: &str) {
    if let Ok(mut slot) = MODEL_AUTH.lock() {
        if slot.is_none() {
            tracing::error!(%reason, "the model refuses the API key; calls fall back until it is fixed");
        }
        *slot = Some(reason.to_string());
    }
}

/// A model socket was accepted: the key works.
pub fn model_auth_ok() {
    if let Ok(mut slot) = MODEL_AUTH.lock() {
        *slot = None;
    }
}

/// Why the service is degraded; empty when healthy.
pub fn problems() -> Vec<String> {
    MODEL_AUTH
        .lock()
        .ok()
        .and_then(|slot| slot.clone())
        .map(|reason| vec![format!("model: {reason}")])
        .unwrap_or_default()
}
