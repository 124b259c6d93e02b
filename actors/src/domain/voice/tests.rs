//! The voice call without a runtime: every input carries its own time.

use serde_json::json;

use super::*;
use crate::domain::backoff::RetryPolicy;
use crate::protocol::openai::realtime::parse_server_event;

const STREAM: &str = "MZ00000000000000000000000000000001";

fn agents() -> AgentsConfig {
    crate::domain::agents::shipped()
}

fn settings(human: bool) -> VoiceSettings {
    let mut config = EngineConfig::default();
    if human {
        config.twilio.human_number = Some("+15555550100".into());
    }
    config.voice.reconnect = RetryPolicy {
        base_ms: 100,
        max_ms: 400,
        max_attempts: 2,
        jitter: false,
    };
    VoiceSettings::from_config(&config)
}

fn at(ms: u64) -> Now {
    Now {
        ms,
        wall_ms: 1_700_000_000_000 + ms,
    }
}

/// A call whose first session is configured and greeted; returns it with what it sent.
fn live_call(human: bool, context: Option<String>) -> (VoiceCall, AgentsConfig, Vec<VoiceAction>) {
    let agents = agents();
    let (mut call, first) = VoiceCall::new(settings(human), &agents, STREAM.into(), context);
    assert_eq!(
        first,
        vec![VoiceAction::CheckRotationAfter(Duration::from_secs(3300))]
    );
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(0), &mut out);
    (call, agents, out)
}

fn event(
    call: &mut VoiceCall,
    agents: &AgentsConfig,
    now: Now,
    json: serde_json::Value,
) -> Vec<VoiceAction> {
    let event = parse_server_event(&json.to_string()).expect("a server event");
    let mut out = Vec::new();
    call.model_event(event, agents, now, 0, &mut out);
    out
}

fn model_events(actions: &[VoiceAction]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            VoiceAction::Model(json) | VoiceAction::Configure(json) => {
                serde_json::from_str(json).ok()
            }
            _ => None,
        })
        .collect()
}

fn model_types(actions: &[VoiceAction]) -> Vec<String> {
    model_events(actions)
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

fn twilio_events(actions: &[VoiceAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            VoiceAction::Twilio(json) => serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|e| e["event"].as_str().map(str::to_owned)),
            _ => None,
        })
        .collect()
}

fn mark_names(actions: &[VoiceAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            VoiceAction::Twilio(json) => serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|e| e["mark"]["name"].as_str().map(str::to_owned)),
            _ => None,
        })
        .collect()
}

fn function_call(name: &str, arguments: &str) -> serde_json::Value {
    json!({"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0,
        "item": {"id": "item_fc", "type": "function_call", "call_id": "call_1", "name": name,
                 "arguments": arguments, "status": "completed"}})
}

fn done(status: &str, error: Option<(&str, &str)>) -> serde_json::Value {
    let details = error.map(|(kind, code)| {
        json!({"type": "failed", "error": {"type": kind, "code": code, "message": "details"}})
    });
    json!({"type": "response.done", "response": {"id": "resp_1", "status": status,
        "status_details": details, "output": []}})
}

/// 100 ms of μ-law, base64.
fn audio() -> String {
    B64.encode([0x7f_u8; 800])
}

#[test]
fn the_first_words_are_held_until_the_session_is_configured_then_the_caller_is_greeted() {
    let agents = agents();
    let (mut call, _) = VoiceCall::new(settings(false), &agents, STREAM.into(), None);
    assert_eq!(call.caller_audio("AAAA"), CallerAudio::Held);
    assert_eq!(call.caller_audio("BBBB"), CallerAudio::Held);
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(300), &mut out);
    assert!(
        matches!(out.first(), Some(VoiceAction::Configure(_))),
        "{out:?}"
    );
    assert_eq!(
        out.get(1),
        Some(&VoiceAction::ForwardHeld(vec![
            "AAAA".into(),
            "BBBB".into()
        ]))
    );
    assert_eq!(model_types(&out), vec!["session.update", "response.create"]);
    assert_eq!(call.caller_audio("CCCC"), CallerAudio::Forward);
    // Only the most recent audio is held when the model takes long.
    let (mut slow, _) = VoiceCall::new(settings(false), &agents, STREAM.into(), None);
    for i in 0..(HELD_FRAMES + 10) {
        slow.caller_audio(&i.to_string());
    }
    let mut out = Vec::new();
    slow.model_ready(false, &agents, at(0), &mut out);
    let held = out.iter().find_map(|a| match a {
        VoiceAction::ForwardHeld(frames) => Some(frames.clone()),
        _ => None,
    });
    let held = held.expect("held audio");
    assert_eq!(held.len(), HELD_FRAMES);
    assert_eq!(held.first().map(String::as_str), Some("10"));
}

#[test]
fn the_session_carries_the_agent_and_what_is_known_of_the_caller() {
    let (_, _, out) = live_call(false, Some("# Earlier contact\nThey booked S102.".into()));
    let update = model_events(&out)
        .into_iter()
        .next()
        .expect("session.update");
    let session = &update["session"];
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(session["audio"]["output"]["voice"], "marin");
    let instructions = session["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.starts_with("You are the front desk"),
        "{instructions}"
    );
    assert!(
        instructions.ends_with("They booked S102."),
        "{instructions}"
    );
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"transfer_to_booking") && tools.contains(&"escalate_to_human"));
}

#[test]
fn answer_audio_is_marked_and_the_turn_is_timed_to_the_first_played_mark() {
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(1000),
        json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "item_u1"}),
    );
    let mut out = Vec::new();
    call.assistant_audio("item_a1", &audio(), 100, at(1300), &mut out);
    assert_eq!(twilio_events(&out), vec!["media", "mark"]);
    let mark = mark_names(&out).pop().expect("a mark");
    let mut out = Vec::new();
    call.mark(&mark, at(1450), &mut out);
    assert_eq!(
        out,
        vec![VoiceAction::Observed(Observation::TurnLatency(
            Duration::from_millis(450)
        ))]
    );
    assert_eq!(call.last_turn_latency_ms(), Some(450));
}

#[test]
fn a_barge_in_clears_twilio_and_truncates_at_what_was_heard() {
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        json!({"type": "response.output_audio_transcript.delta", "response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0, "delta": "Our store opens at nine and closes at six."}),
    );
    let mut out = Vec::new();
    for i in 0..10 {
        call.assistant_audio("item_a1", &audio(), 100, at(i * 10), &mut out);
    }
    let first = mark_names(&out).into_iter().next().expect("mark");
    call.mark(&first, at(100), &mut Vec::new());
    let out = event(
        &mut call,
        &agents,
        at(350),
        json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5000, "item_id": "item_u2"}),
    );
    assert_eq!(twilio_events(&out), vec!["clear"]);
    assert!(out.contains(&VoiceAction::Observed(Observation::BargeIn)));
    let truncate = model_events(&out).into_iter().next().expect("truncate");
    assert_eq!(truncate["type"], "conversation.item.truncate");
    // Only the first chunk's mark came back: the caller is somewhere in the second one,
    // and never past its end.
    assert_eq!(truncate["audio_end_ms"], 200);
    // Late deltas of the interrupted item are dropped.
    assert!(!call.wants_audio("item_a1"));
    let mut late = Vec::new();
    call.assistant_audio("item_a1", &audio(), 100, at(400), &mut late);
    assert!(late.is_empty());
    let said = call.transcript_now(at(500));
    assert_eq!(said.turns().last().map(|t| t.text.as_str()), Some("Our…"));
}

#[test]
fn a_slow_tool_plays_hold_audio_that_stops_when_the_caller_talks_over_it() {
    let (mut call, agents, _) = live_call(false, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        function_call("store_hours", "{}"),
    );
    event(&mut call, &agents, at(0), done("completed", None));
    assert_eq!(
        out,
        vec![
            VoiceAction::RunTool {
                call_id: "call_1".into(),
                name: "store_hours".into(),
                arguments: "{}".into()
            },
            VoiceAction::CheckHoldAfter(Duration::from_millis(1200))
        ]
    );
    let mut out = Vec::new();
    call.hold_due(at(1200), &mut out);
    assert_eq!(out, vec![VoiceAction::HoldTicks(true)]);
    assert_eq!(call.state(), "on-hold");
    let mut out = Vec::new();
    call.hold_tick(&[0xff; 4000], at(1250), &mut out);
    assert_eq!(twilio_events(&out), vec!["media"]);
    // The caller talks: the hold audio is cleared and stays off for this tool.
    let out = event(
        &mut call,
        &agents,
        at(1300),
        json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "item_u1"}),
    );
    assert_eq!(out.first(), Some(&VoiceAction::HoldTicks(false)));
    assert_eq!(twilio_events(&out), vec!["clear"]);
    let mut again = Vec::new();
    call.hold_due(at(2500), &mut again);
    assert!(again.is_empty(), "{again:?}");
    // The result goes to the model, which is asked to go on.
    let mut out = Vec::new();
    call.tool_finished(
        "call_1",
        "store_hours",
        r#"{"summary":"9 to 6"}"#,
        at(3000),
        &mut out,
    );
    assert_eq!(
        model_types(&out),
        vec!["conversation.item.create", "response.create"]
    );
}

#[test]
fn handoffs_follow_the_agents_list_and_keep_the_voice() {
    let (mut call, agents, _) = live_call(false, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        function_call("transfer_to_booking", "{}"),
    );
    assert!(out.contains(&VoiceAction::HandedOff {
        from: "triage".into(),
        to: "booking".into()
    }));
    let events = model_events(&out);
    assert_eq!(events[0]["type"], "session.update");
    assert!(events[0]["session"]["instructions"]
        .as_str()
        .is_some_and(|i| i.starts_with("You book appointments")));
    assert_eq!(events[0]["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(call.agent(), "booking");
    // booking does not list support... but it does; support does not list billing.
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        function_call("transfer_to_support", "{}"),
    );
    event(&mut call, &agents, at(0), done("completed", None));
    let out = event(
        &mut call,
        &agents,
        at(10),
        function_call("transfer_to_billing", "{}"),
    );
    assert_eq!(call.agent(), "support");
    let output = model_events(&out)
        .into_iter()
        .find(|e| e["type"] == "conversation.item.create")
        .expect("the refusal goes to the model");
    assert!(output["item"]["output"]
        .as_str()
        .is_some_and(|o| o.contains("cannot hand off")));
}

#[test]
fn escalation_needs_a_person_and_ends_the_call_after_the_goodbye() {
    let (mut call, agents, _) = live_call(true, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        function_call("escalate_to_human", r#"{"reason":"wants a manager"}"#),
    );
    assert!(out.contains(&VoiceAction::Escalated {
        reason: "wants a manager".into()
    }));
    assert!(out.contains(&VoiceAction::HangUpWithin(ENDING_GRACE)));
    // The goodbye is owed once the function-call response is done; then it plays out.
    let out = event(&mut call, &agents, at(10), done("completed", None));
    assert_eq!(model_types(&out), vec!["response.create"]);
    let mut out = Vec::new();
    call.assistant_audio("item_bye", &audio(), 100, at(20), &mut out);
    let mark = mark_names(&out).pop().expect("mark");
    event(&mut call, &agents, at(30), done("completed", None));
    let mut out = Vec::new();
    call.mark(&mark, at(130), &mut out);
    assert!(out.contains(&VoiceAction::HangUp), "{out:?}");
    assert_eq!(call.finish(at(200)).outcome, CallOutcome::Escalated);

    let (mut alone, agents, _) = live_call(false, None);
    let out = event(
        &mut alone,
        &agents,
        at(0),
        function_call("escalate_to_human", "{}"),
    );
    assert!(!out.iter().any(|a| matches!(
        a,
        VoiceAction::Escalated { .. } | VoiceAction::HangUpWithin(_)
    )));
    assert_eq!(alone.state(), "live");
}

#[test]
fn send_sms_is_run_as_a_tool() {
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        function_call("transfer_to_orders", "{}"),
    );
    let out = event(
        &mut call,
        &agents,
        at(0),
        function_call("send_sms", r#"{"message":"Tracking 1Z999"}"#),
    );
    assert!(matches!(out.first(), Some(VoiceAction::RunTool { name, .. }) if name == "send_sms"));
}

#[test]
fn a_key_press_is_the_callers_input_and_is_answered() {
    let (mut call, agents, _) = live_call(false, None);
    event(&mut call, &agents, at(0), done("completed", None));
    let mut out = Vec::new();
    call.dtmf("5", at(10), &mut out);
    let events = model_events(&out);
    assert_eq!(events[0]["item"]["role"], "user");
    assert_eq!(
        events[0]["item"]["content"][0]["text"],
        "[The caller pressed the key 5]"
    );
    assert_eq!(events[1]["type"], "response.create");
    let mut nothing = Vec::new();
    call.dtmf("<script>", at(20), &mut nothing);
    assert!(nothing.is_empty());
    let turns = call.transcript_now(at(30));
    assert!(turns
        .turns()
        .iter()
        .any(|t| t.role == Role::User && t.text.contains("key 5")));
}

#[test]
fn a_fatal_failed_response_falls_back_at_once() {
    let (mut call, agents, _) = live_call(false, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        done("failed", Some(("insufficient_quota", "insufficient_quota"))),
    );
    assert!(
        out.contains(&VoiceAction::Observed(Observation::ResponseFailed {
            reason: "insufficient_quota: details".into(),
            fatal: true
        }))
    );
    assert!(out.contains(&VoiceAction::PlayFallback));
    let mut out = Vec::new();
    call.play_fallback(&[0xff; 800], 100, at(5), &mut out);
    let mark = mark_names(&out).pop().expect("the apology is marked");
    let mut out = Vec::new();
    call.mark(&mark, at(105), &mut out);
    assert_eq!(out, vec![VoiceAction::HangUp]);
    assert_eq!(call.finish(at(200)).outcome, CallOutcome::Fallback);
    // With a person available, the caller goes to them instead.
    let (mut call, agents, _) = live_call(true, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        done(
            "failed",
            Some(("invalid_request_error", "inference_not_authorized_error")),
        ),
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, VoiceAction::Escalated { .. })));
    assert!(out.contains(&VoiceAction::HangUp));
}

#[test]
fn a_transient_failed_response_is_retried_then_falls_back() {
    let (mut call, agents, _) = live_call(false, None);
    let out = event(
        &mut call,
        &agents,
        at(0),
        done("failed", Some(("server_error", ""))),
    );
    assert!(
        out.contains(&VoiceAction::RetryResponseAfter(Duration::from_millis(100))),
        "{out:?}"
    );
    let mut retry = Vec::new();
    call.retry_response(&mut retry);
    assert_eq!(model_types(&retry), vec!["response.create"]);
    let out = event(&mut call, &agents, at(10), done("failed", None));
    assert!(
        out.contains(&VoiceAction::RetryResponseAfter(Duration::from_millis(200))),
        "{out:?}"
    );
    call.retry_response(&mut Vec::new());
    let out = event(
        &mut call,
        &agents,
        at(20),
        done("failed", Some(("server_error", ""))),
    );
    assert!(
        out.contains(&VoiceAction::PlayFallback),
        "budget spent: {out:?}"
    );
    // A success in between resets the budget.
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        done("failed", Some(("server_error", ""))),
    );
    call.retry_response(&mut Vec::new());
    let ok = event(&mut call, &agents, at(5), done("completed", None));
    assert!(ok.contains(&VoiceAction::Observed(Observation::ResponseCompleted)));
    let out = event(
        &mut call,
        &agents,
        at(10),
        done("failed", Some(("server_error", ""))),
    );
    assert!(out.contains(&VoiceAction::RetryResponseAfter(Duration::from_millis(100))));
}

#[test]
fn the_callers_words_keep_their_place_before_the_answer_they_prompted() {
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        json!({"type": "input_audio_buffer.committed", "previous_item_id": null, "item_id": "item_u1"}),
    );
    event(
        &mut call,
        &agents,
        at(10),
        json!({"type": "response.output_audio_transcript.done", "response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0, "transcript": "It opens at nine."}),
    );
    event(
        &mut call,
        &agents,
        at(20),
        json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_u1", "content_index": 0, "transcript": "When do you open?"}),
    );
    let finished = call.finish(at(30));
    let turns: Vec<(Role, &str)> = finished
        .transcript
        .turns()
        .iter()
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    assert_eq!(
        turns,
        vec![
            (Role::User, "When do you open?"),
            (Role::Assistant, "It opens at nine.")
        ]
    );
}

#[test]
fn a_lost_model_means_hold_audio_then_a_new_session_gets_the_conversation_back() {
    let (mut call, agents, _) = live_call(false, None);
    event(
        &mut call,
        &agents,
        at(0),
        json!({"type": "response.output_audio_transcript.done", "response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0, "transcript": "Hello, how can I help?"}),
    );
    event(&mut call, &agents, at(5), done("completed", None));
    call.dtmf("1", at(6), &mut Vec::new());
    let mut out = Vec::new();
    call.model_lost(at(10), &mut out);
    assert_eq!(
        out,
        vec![
            VoiceAction::Observed(Observation::ModelReconnect),
            VoiceAction::HoldTicks(true)
        ]
    );
    assert_eq!(call.state(), "reconnecting");
    assert_eq!(call.caller_audio("AAAA"), CallerAudio::Held);
    let mut out = Vec::new();
    call.model_ready(true, &agents, at(500), &mut out);
    assert_eq!(
        model_types(&out),
        vec![
            "session.update",
            "conversation.item.create",
            "conversation.item.create",
            "response.create"
        ]
    );
    let configure = out
        .iter()
        .position(|a| matches!(a, VoiceAction::Configure(_)));
    let held = out
        .iter()
        .position(|a| matches!(a, VoiceAction::ForwardHeld(_)));
    assert!(
        configure < held,
        "audio only after the session is configured: {out:?}"
    );
    assert!(out.contains(&VoiceAction::HoldTicks(false)));
    assert_eq!(call.reconnects(), 1);
    // After the retry budget, the fallback.
    let mut out = Vec::new();
    call.model_lost(at(600), &mut out);
    call.model_gave_up("retries spent", at(700), &mut out);
    assert!(out.contains(&VoiceAction::PlayFallback));
    assert_eq!(call.caller_audio("BBBB"), CallerAudio::Held);
}

#[test]
fn the_session_rotates_only_at_a_quiet_moment() {
    let (mut call, agents, _) = live_call(false, None);
    let mut out = Vec::new();
    call.rotation_due(&mut out);
    assert_eq!(
        out,
        vec![VoiceAction::CheckRotationAfter(ROTATION_RETRY)],
        "greeting in progress"
    );
    event(&mut call, &agents, at(0), done("completed", None));
    let mut out = Vec::new();
    call.rotation_due(&mut out);
    assert_eq!(
        out,
        vec![
            VoiceAction::RotateModel,
            VoiceAction::CheckRotationAfter(Duration::from_secs(3300))
        ]
    );
    assert_eq!(call.caller_audio("AAAA"), CallerAudio::Held);
}

#[test]
fn failures_are_classified_by_type_and_code() {
    let failure = |details: serde_json::Value| {
        let response: ResponseObject = serde_json::from_value(json!({
            "status": "failed", "status_details": details, "output": []
        }))
        .expect("response");
        Failure::of(&response)
    };
    assert!(failure(json!({"error": {"type": "insufficient_quota", "code": null}})).fatal);
    assert!(
        failure(json!({"error": {"type": "invalid_request_error", "code": "invalid_api_key"}}))
            .fatal
    );
    assert!(!failure(json!({"error": {"type": "server_error", "code": null}})).fatal);
    assert!(!failure(json!({"error": {"type": "tokens", "code": "rate_limit_exceeded"}})).fatal);
    let unknown = failure(serde_json::Value::Null);
    assert!(!unknown.fatal);
    assert_eq!(unknown.reason, "unknown");
}

#[test]
fn a_call_back_from_a_failed_transfer_continues_its_conversation_and_speaks_first() {
    let agents = agents();
    let mut config = settings(true);
    config.greet = false;
    let (mut call, _) = VoiceCall::new(config, &agents, STREAM.into(), None);
    let mut earlier = Transcript::new();
    earlier.push(Role::User, "I want a manager", 1);
    earlier.push(Role::Assistant, "Let me transfer you.", 2);
    let mut out = Vec::new();
    call.resume(
        Resumption {
            transcript: earlier,
            tools_used: vec!["escalate_to_human".into()],
            agent: None,
            note: effects::transfer_failed_note("no-answer"),
            hold: false,
        },
        &agents,
        at(0),
        &mut out,
    );
    assert!(out.is_empty());
    call.model_ready(false, &agents, at(0), &mut out);
    assert_eq!(
        model_types(&out),
        vec![
            "session.update",
            "conversation.item.create",
            "conversation.item.create",
            "response.create"
        ]
    );
    let update = model_events(&out).into_iter().next().expect("update");
    assert!(update["session"]["instructions"]
        .as_str()
        .is_some_and(|i| i.contains("nobody answered")));
    let finished = call.finish(at(10));
    assert_eq!(finished.transcript.len(), 2);
    assert_eq!(finished.tools_used, vec!["escalate_to_human".to_string()]);
}

#[test]
fn a_call_resumed_after_its_stream_broke_holds_then_continues_with_its_agent() {
    let agents = agents();
    let (mut call, _) = VoiceCall::new(settings(false), &agents, STREAM.into(), None);
    let mut earlier = Transcript::new();
    earlier.push(Role::User, "I'd like a fitting", 1);
    let mut out = Vec::new();
    call.resume(
        Resumption {
            transcript: earlier,
            tools_used: vec!["transfer_to_booking".into()],
            agent: Some("booking".into()),
            note: RESUMED_AFTER_DROP_NOTE.into(),
            hold: true,
        },
        &agents,
        at(0),
        &mut out,
    );
    assert_eq!(out, vec![VoiceAction::HoldTicks(true)]);
    assert_eq!(call.agent(), "booking");
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(800), &mut out);
    assert!(
        !out.contains(&VoiceAction::HoldTicks(false)),
        "the hold goes on until the agent speaks"
    );
    let update = model_events(&out).into_iter().next().expect("update");
    let instructions = update["session"]["instructions"]
        .as_str()
        .unwrap_or_default();
    assert!(
        instructions.starts_with("You book appointments"),
        "{instructions}"
    );
    assert!(instructions.contains("The call was interrupted"));
    assert_eq!(update["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(
        model_types(&out).last().map(String::as_str),
        Some("response.create")
    );
    let mut held = Vec::new();
    call.hold_tick(&[0x7f; 1600], at(850), &mut held);
    assert_eq!(
        twilio_events(&held),
        vec!["media"],
        "hold audio while the model answers"
    );
    // The agent's first words: what is left of the hold is cleared, the ticks stop.
    let mut out = Vec::new();
    call.assistant_audio("item_r1", &audio(), 100, at(880), &mut out);
    assert!(out.contains(&VoiceAction::HoldTicks(false)));
    assert_eq!(twilio_events(&out), vec!["clear", "media", "mark"]);
    assert_eq!(call.state(), "live");
    // A completed turn asks for a snapshot; a broken stream marks the call for resumption.
    let done_out = event(&mut call, &agents, at(900), done("completed", None));
    assert!(done_out.contains(&VoiceAction::Snapshot));
    assert_eq!(call.snapshot(at(950)).agent, "booking");
    call.dropped();
    assert_eq!(call.finish(at(1000)).outcome, CallOutcome::Dropped);
}

#[test]
fn a_drained_call_cuts_the_answer_short_says_goodbye_and_hangs_up_once_it_played() {
    let (mut call, agents, _) = live_call(false, None);
    let mut out = Vec::new();
    for i in 0..5 {
        call.assistant_audio("item_a1", &audio(), 100, at(i * 10), &mut out);
    }
    let goodbye = [0x7f_u8; 1600];
    let mut out = Vec::new();
    call.say_goodbye(&goodbye, 200, at(100), &mut out);
    // What was still playing is flushed, then the goodbye plays with its own mark.
    assert_eq!(twilio_events(&out), vec!["clear", "media", "mark"]);
    assert!(!out.contains(&VoiceAction::HangUp));
    assert!(!call.wants_audio("item_a1"), "the cut answer stays cut");
    // A second drain notice changes nothing: the goodbye is already playing.
    let mut again = Vec::new();
    call.say_goodbye(&goodbye, 200, at(150), &mut again);
    assert!(again.is_empty(), "{again:?}");
    // The model is no longer listened to: a new answer's audio is not forwarded.
    let late = event(
        &mut call,
        &agents,
        at(200),
        json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5000, "item_id": "item_u2"}),
    );
    assert!(
        !twilio_events(&late).contains(&"clear".to_string()),
        "{late:?}"
    );
    let mark = mark_names(&out).pop().expect("the goodbye's mark");
    let mut played = Vec::new();
    call.mark(&mark, at(320), &mut played);
    assert!(played.contains(&VoiceAction::HangUp), "{played:?}");
    assert_eq!(call.finish(at(400)).outcome, CallOutcome::Completed);
}

// --- Numbers and identity ------------------------------------------------------------

#[test]
fn a_landline_caller_is_never_offered_send_sms_and_the_agents_know_why() {
    use crate::domain::effects::Withheld;
    use crate::domain::records::LineInfo;
    let agents = agents();
    let (mut call, _) = VoiceCall::new(settings(false), &agents, STREAM.into(), None);
    call.withhold(Withheld::for_line(Some(&LineInfo {
        line_type: "landline".into(),
        carrier: None,
        checked_at_ms: 1,
    })));
    call.model_ready(false, &agents, at(0), &mut Vec::new());
    let out = event(
        &mut call,
        &agents,
        at(0),
        function_call("transfer_to_orders", "{}"),
    );
    let session = &model_events(&out)[0]["session"];
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"lookup_order") && !tools.contains(&"send_sms"),
        "{tools:?}"
    );
    assert!(session["instructions"]
        .as_str()
        .is_some_and(|i| i.contains("landline and cannot receive text messages")));
    // Called anyway, it is refused without running.
    event(&mut call, &agents, at(0), done("completed", None));
    let out = event(
        &mut call,
        &agents,
        at(10),
        function_call("send_sms", r#"{"message":"Tracking 1Z999"}"#),
    );
    assert!(!out.iter().any(|a| matches!(a, VoiceAction::RunTool { .. })));
    assert!(model_events(&out).iter().any(|e| e["item"]["output"]
        .as_str()
        .is_some_and(|o| o.contains("not available"))));
}

#[test]
fn a_call_the_engine_placed_is_opened_by_its_agent_with_the_reason() {
    let agents = agents();
    let mut config = settings(true);
    config.greet = false;
    let (mut call, _) = VoiceCall::new(config, &agents, STREAM.into(), None);
    call.place_outbound(
        "booking",
        crate::domain::outreach::opening_note("confirm tomorrow's fitting"),
        &agents,
    );
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(0), &mut out);
    assert_eq!(model_types(&out), vec!["session.update", "response.create"]);
    let update = model_events(&out).into_iter().next().expect("update");
    assert!(update["session"]["instructions"]
        .as_str()
        .is_some_and(|i| i.contains("confirm tomorrow's fitting")));
    assert_eq!(call.agent(), "booking");
}

#[test]
fn a_silent_line_is_asked_once_then_ended_as_idle() {
    let agents = agents();
    let mut config = settings(false);
    config.greet = false;
    config.idle_prompt = Some(Duration::from_secs(10));
    config.idle_hangup = Some(Duration::from_secs(25));
    let (mut call, first) = VoiceCall::new(config, &agents, STREAM.into(), None);
    assert!(first.contains(&VoiceAction::CheckIdleAfter(Duration::from_secs(10))));
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(0), &mut out);

    // Early: look again when the ten seconds are up.
    let mut out = Vec::new();
    call.idle_due(at(4_000), &mut out);
    assert_eq!(
        out,
        vec![VoiceAction::CheckIdleAfter(Duration::from_secs(6))]
    );

    // Ten silent seconds: the agent asks, once.
    let mut out = Vec::new();
    call.idle_due(at(10_000), &mut out);
    assert_eq!(
        model_types(&out),
        vec!["conversation.item.create", "response.create"]
    );
    let asked = model_events(&out)[0]["item"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(asked.contains("still there"), "{asked}");
    // While it is being said, that is not silence.
    let mut out = Vec::new();
    call.idle_due(at(12_000), &mut out);
    assert!(model_types(&out).is_empty());
    event(&mut call, &agents, at(13_000), done("completed", None));
    let mut out = Vec::new();
    call.idle_due(at(20_000), &mut out);
    assert!(model_types(&out).is_empty(), "asked only once");
    assert_eq!(
        out,
        vec![VoiceAction::CheckIdleAfter(Duration::from_secs(5))]
    );

    // Twenty-five seconds without a word from the caller: goodbye, hang-up, outcome idle.
    let mut out = Vec::new();
    call.idle_due(at(25_000), &mut out);
    assert_eq!(
        model_types(&out),
        vec!["conversation.item.create", "response.create"]
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, VoiceAction::HangUp | VoiceAction::HangUpWithin(_))));
    let finished = call.finish(at(30_000));
    assert_eq!(finished.outcome, CallOutcome::Idle);
}

#[test]
fn a_caller_who_answers_the_question_keeps_the_call() {
    let agents = agents();
    let mut config = settings(false);
    config.greet = false;
    config.idle_prompt = Some(Duration::from_secs(10));
    config.idle_hangup = Some(Duration::from_secs(25));
    let (mut call, _) = VoiceCall::new(config, &agents, STREAM.into(), None);
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(0), &mut out);
    call.idle_due(at(10_000), &mut Vec::new());
    event(&mut call, &agents, at(11_000), done("completed", None));
    // "Yes, I'm here": speech resets the count.
    event(
        &mut call,
        &agents,
        at(15_000),
        json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 15000, "item_id": "item_u"}),
    );
    event(
        &mut call,
        &agents,
        at(16_000),
        json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 16000, "item_id": "item_u"}),
    );
    let mut out = Vec::new();
    call.idle_due(at(25_000), &mut out);
    assert!(!out
        .iter()
        .any(|a| matches!(a, VoiceAction::HangUp | VoiceAction::HangUpWithin(_))));
    assert_eq!(call.finish(at(26_000)).outcome, CallOutcome::Completed);
}

#[test]
fn a_resumed_call_whose_first_response_has_no_audio_stops_holding() {
    let agents = agents();
    let (mut call, _) = VoiceCall::new(settings(false), &agents, STREAM.into(), None);
    let mut out = Vec::new();
    call.resume(
        Resumption {
            transcript: Transcript::new(),
            tools_used: Vec::new(),
            agent: None,
            note: RESUMED_AFTER_DROP_NOTE.into(),
            hold: true,
        },
        &agents,
        at(0),
        &mut out,
    );
    let mut out = Vec::new();
    call.model_ready(false, &agents, at(500), &mut out);
    assert!(!out.contains(&VoiceAction::HoldTicks(false)));
    let done_out = event(&mut call, &agents, at(900), done("completed", None));
    assert!(done_out.contains(&VoiceAction::HoldTicks(false)));
    assert_ne!(call.state(), "reconnecting");
}
