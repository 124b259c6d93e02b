//! Engine health for `/health`: reasons the service is degraded, set where they are found.

use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct Health {
    /// Why the model refused our key, until a socket is accepted again.
    model_auth: Mutex<Option<String>>,
}

impl Health {
    /// The model refused our key: `/health` turns 503 until a socket is accepted again.
    /// Logged once per outage, not once per call.
    pub fn model_auth_failed(&self, reason: &str) {
        let mut slot = self
            .model_auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            tracing::error!(%reason, "the model refuses the API key; calls fall back until it is fixed");
        }
        *slot = Some(reason.to_string());
    }

    /// A model socket was accepted: the key works.
    pub fn model_auth_ok(&self) {
        let mut slot = self
            .model_auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.take().is_some() {
            tracing::info!("the model accepts the API key again");
        }
    }

    /// Why the service is degraded; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let slot = self
            .model_auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.iter()
            .map(|reason| format!("model: {reason}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failure_degrades_until_a_socket_is_accepted() {
        let health = Health::default();
        assert!(health.problems().is_empty());
        health.model_auth_failed("401");
        assert_eq!(health.problems(), vec!["model: 401".to_string()]);
        health.model_auth_ok();
        assert!(health.problems().is_empty());
    }
}
