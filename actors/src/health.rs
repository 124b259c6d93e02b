//! Engine health for `/health`: reasons the service is degraded, set where they are found.

use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct Health {
    /// Set when the process is being stopped: `/health` answers `503 draining` at once.
    pub drain: crate::drain::Drain,
    /// Why the model refused our key, until a socket is accepted again.
    model_auth: Mutex<Option<String>>,
    /// Why the model fails every response (quota, permissions), until one completes.
    model_responses: Mutex<Option<String>>,
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

    /// The model failed a response for a reason no retry fixes (`insufficient_quota`, a
    /// key without permission): `/health` turns 503 until a response completes again.
    pub fn model_failing(&self, reason: &str) {
        let mut slot = self
            .model_responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            tracing::error!(%reason, "the model fails every response; calls fall back until it is fixed");
        }
        *slot = Some(reason.to_string());
    }

    /// A model response completed: the account works.
    pub fn model_working(&self) {
        let mut slot = self
            .model_responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.take().is_some() {
            tracing::info!("the model answers again");
        }
    }

    /// Whether the model is known not to answer (a refused key, every response failing):
    /// new calls then get the key-press menu rather than an assistant that cannot speak.
    pub fn model_unreachable(&self) -> bool {
        !self.problems().is_empty()
    }

    /// Why the service is degraded; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        [&self.model_auth, &self.model_responses]
            .into_iter()
            .filter_map(|slot| {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .map(|reason| format!("model: {reason}"))
            })
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

    #[test]
    fn failing_responses_degrade_until_one_completes() {
        let health = Health::default();
        health.model_failing("insufficient_quota");
        health.model_auth_failed("401");
        assert_eq!(health.problems().len(), 2);
        health.model_working();
        assert_eq!(health.problems(), vec!["model: 401".to_string()]);
    }
}
