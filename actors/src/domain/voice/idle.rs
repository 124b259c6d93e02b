//! Silence on the line (issue 10): after `voice.idle_prompt_secs` with nothing said or
//! played on either side, the agent asks whether the caller is still there; if the caller
//! still says nothing (no speech, no key) for `voice.idle_hangup_secs` from their last
//! word, the agent says goodbye and the call hangs up with outcome `idle`. Pure: the Call
//! actor runs [`VoiceCall::idle_due`] when a [`VoiceAction::CheckIdleAfter`] comes due, with
//! the time it is.

use std::time::Duration;

use super::{Link, Now, VoiceAction, VoiceCall};
use crate::domain::records::CallOutcome;
use crate::domain::transcript::Role;

/// What the model is told when the line has been silent.
pub(super) const STILL_THERE_PROMPT: &str = "The line has been silent for a while. Ask the \
     caller, in a few words, whether they are still there.";
/// What the model is told when the caller never answered that.
pub(super) const IDLE_GOODBYE_PROMPT: &str = "The caller has not answered. Say a short, \
     friendly goodbye — they can call back any time — and nothing else.";

/// When each side was last heard, in the call's monotonic ms.
#[derive(Debug, Default, Clone)]
pub(super) struct Idle {
    last_any_ms: u64,
    last_caller_ms: u64,
    /// Asked "are you still there?" since the caller last spoke.
    prompted: bool,
}

impl Idle {
    /// Something was said or played on the line.
    pub(super) fn heard(&mut self, now: Now) {
        self.last_any_ms = self.last_any_ms.max(now.ms);
    }

    /// The caller spoke or pressed a key.
    pub(super) fn caller_spoke(&mut self, now: Now) {
        self.heard(now);
        self.last_caller_ms = self.last_caller_ms.max(now.ms);
        self.prompted = false;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl VoiceCall {
    /// The first silence check, when silence is watched at all.
    pub(super) fn idle_first_check(&self) -> Option<VoiceAction> {
        self.settings.idle_prompt.map(VoiceAction::CheckIdleAfter)
    }

    /// A silence check came due at `now`: prompt, hang up, or look again later.
    pub fn idle_due(&mut self, now: Now, out: &mut Vec<VoiceAction>) {
        let Some(prompt) = self.settings.idle_prompt else {
            return;
        };
        if self.ending {
            return;
        }
        // The assistant is answering, speaking or waiting for a tool, or the model is away:
        // that is not silence.
        let busy = self.response_active
            || self.response_owed
            || self.tools_pending > 0
            || self.ledger.has_unplayed()
            || self.link != Link::Live;
        if busy {
            self.idle.heard(now);
            out.push(VoiceAction::CheckIdleAfter(prompt));
            return;
        }
        let hangup = self.settings.idle_hangup;
        if self.idle.prompted {
            let Some(hangup) = hangup else {
                // Asked once; without a hang-up time the call waits for the caller.
                out.push(VoiceAction::CheckIdleAfter(prompt));
                return;
            };
            let quiet = now.ms.saturating_sub(self.idle.last_caller_ms);
            if quiet >= millis(hangup) {
                self.outcome = CallOutcome::Idle;
                self.transcript.push(
                    Role::System,
                    "idle: the caller did not answer; the call was ended".to_owned(),
                    now.wall_ms,
                );
                self.last_words(IDLE_GOODBYE_PROMPT, now, out);
                self.end_after_playback(out);
                return;
            }
            out.push(VoiceAction::CheckIdleAfter(Duration::from_millis(
                millis(hangup) - quiet,
            )));
            return;
        }
        let silent = now.ms.saturating_sub(self.idle.last_any_ms);
        if silent < millis(prompt) {
            out.push(VoiceAction::CheckIdleAfter(Duration::from_millis(
                millis(prompt) - silent,
            )));
            return;
        }
        self.idle.prompted = true;
        self.transcript.push(
            Role::System,
            "idle: asked whether the caller is still there".to_owned(),
            now.wall_ms,
        );
        self.last_words(STILL_THERE_PROMPT, now, out);
        // The question plays first (busy until then); the hang-up is counted from the
        // caller's last word.
        out.push(VoiceAction::CheckIdleAfter(prompt));
    }
}
