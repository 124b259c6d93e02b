//! `POST /twilio/voice` (incoming call → TwiML), `POST /twilio/voice/next` (after the
//! stream or relay session ends → `<Dial>` or `<Hangup/>`), `POST /twilio/voice/dial-result`
//! (the `<Dial>` ended: back to the assistant unless the person answered),
//! `POST /twilio/voice/voicemail-done` (the `<Record>` of a voicemail ended → goodbye),
//! `POST /twilio/voice/voicemail-transcription` (its transcription → the customer's
//! record and a text to the person taking transfers), `POST /twilio/status` (call status
//! callbacks) and `POST /twilio/transcription` (Real-Time Transcription callbacks).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{signed_form, twiml, RouteError};
use actors::clock::wall_clock_ms;
use actors::config::{EngineConfig, RelayConfig, VoiceMode};
use actors::domain::outreach;
use actors::domain::records::{transcription_entry, CustomerChange, Voicemail};
use actors::engine::{AfterStream, CallRefused};
use actors::protocol::twilio::twiml::{Response, Verb, RESUMED_AFTER_DIAL, RESUMED_AFTER_DROP};
use actors::protocol::twilio::webhook::{
    DialResult, StatusCallback, TranscriptionCallback, TranscriptionEvent, VoiceWebhook,
    VoicemailTranscription,
};
use actors::Engine;

/// What a caller hears when every line is taken (SPEC §8).
const ALL_LINES_BUSY: &str =
    "Sorry, all of our lines are busy right now. Please call again in a few minutes. Goodbye.";

/// What a caller who asked for a person hears when no human number is configured.
const NOBODY_TO_TAKE_IT: &str =
    "Sorry, nobody can take your call right now. A colleague will get back to you. Goodbye.";

/// The relay's greeting when a session that broke resumes (Twilio's voice is the
/// assistant's there; a Media Stream resumes with the hold prompt, then the model).
const RESUMED_RELAY: &str = "Sorry, we were cut off for a moment. I'm back. Where were we?";

/// What a caller hears when the person they were transferred to did not answer, before the
/// assistant (told what happened) takes them back.
const TRANSFER_FAILED: &str = "Sorry, nobody could take your call just now.";
/// The same, as the relay's greeting: Twilio's voice is the assistant's there.
const TRANSFER_FAILED_RELAY: &str =
    "Sorry, nobody could take your call just now. I'm back with you. How else can I help?";

/// What a caller hears before the beep of a voicemail (the assistant has just said so).
const VOICEMAIL_PROMPT: &str =
    "Please leave your message after the beep, and hang up when you are done.";
/// What a caller hears once their voicemail is recorded.
const VOICEMAIL_DONE: &str =
    "Thank you, your message has been recorded. A colleague will get back to you. Goodbye.";

/// Incoming call: admit it, then connect it — to the media socket (realtime mode) or to
/// ConversationRelay (relay mode) — with its identity as `<Parameter>`s (a `<Stream>` URL
/// takes no query string, and a signed relay URL had better not have one either).
pub async fn incoming(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let config = &engine.shared().config;
    let params = signed_form(config, &req, &body)?;
    let call = VoiceWebhook::from_form(&params)?;
    // Draining: no new call, as when every line is taken.
    match engine.admit_call().await {
        Ok(()) => {}
        Err(CallRefused::ShuttingDown) => {
            return Err(RouteError::Unavailable("engine is shutting down".into()))
        }
        Err(refused) => {
            tracing::warn!(call_sid = %call.call_sid, scope = refused.scope(), "all lines busy: call refused");
            return Ok(twiml(
                Response::new()
                    .push(Verb::Say(ALL_LINES_BUSY.into()))
                    .push(Verb::Hangup),
            ));
        }
    }
    // Call patterns (voice.*): transcription, recording and the consent notice first;
    // then the menu when it comes first or no model is reachable, else the assistant.
    let mut response = Response::new();
    for verb in super::call_patterns::prelude(config) {
        response = response.push(verb);
    }
    // People answer, switchboard listens (voice.mode = "human").
    if config.voice_mode() == VoiceMode::Human {
        for verb in super::call_patterns::listen_in(config, call_parameters(&call)) {
            response = response.push(verb);
        }
        return Ok(twiml(response));
    }
    let model_down = config.openai.api_key.is_some() && engine.shared().health.model_unreachable();
    if config.voice.menu.first || model_down {
        return Ok(twiml(
            response.push(super::call_patterns::menu(config, model_down, 1)),
        ));
    }
    Ok(twiml(response.push(connect(
        config,
        call_parameters(&call),
        None,
    ))))
}

/// The call's identity as `<Parameter>`s.
pub(super) fn call_parameters(call: &VoiceWebhook) -> Vec<(String, String)> {
    let mut parameters = vec![("CallSid".to_string(), call.call_sid.clone())];
    if let Some(from) = customer_number(call) {
        parameters.push(("From".into(), from.to_owned()));
    }
    if let Some(to) = our_number(call) {
        parameters.push(("To".into(), to.to_owned()));
    }
    parameters
}

/// Whether the engine placed the call (`POST /calls`): Twilio's requests about it then
/// carry our number as `From` and the customer's as `To`.
fn placed_by_us(call: &VoiceWebhook) -> bool {
    call.direction.as_deref() == Some("outbound-api")
}

/// The customer's side of the call, whichever way it was placed.
pub(super) fn customer_number(call: &VoiceWebhook) -> Option<&str> {
    if placed_by_us(call) {
        call.to.as_deref()
    } else {
        call.from.as_deref()
    }
}

/// Our side of the call.
fn our_number(call: &VoiceWebhook) -> Option<&str> {
    if placed_by_us(call) {
        call.from.as_deref()
    } else {
        call.to.as_deref()
    }
}

/// `<Connect>` to the voice pipeline in force (SPEC §3), ending at `/twilio/voice/next`.
/// `greeting` replaces the relay's welcome greeting (a call that resumes is not welcomed).
pub(super) fn connect(
    config: &EngineConfig,
    parameters: Vec<(String, String)>,
    greeting: Option<&str>,
) -> Verb {
    let action = Some(config.server.public_http_url("/twilio/voice/next"));
    match config.voice_mode() {
        VoiceMode::Relay => Verb::ConnectRelay {
            action,
            url: config.server.public_ws_url("/twilio/relay"),
            attributes: relay_attributes(&config.voice.relay, greeting),
            parameters,
        },
        // `voice_mode` has resolved `auto` already; in `human` mode nothing connects the
        // caller to the assistant (the menu does not offer it), so this is not reached.
        VoiceMode::Realtime | VoiceMode::Auto | VoiceMode::Human => Verb::ConnectStream {
            action,
            url: config.server.public_ws_url("/twilio/media"),
            parameters,
        },
    }
}

/// The configured `<ConversationRelay>` attributes; unset ones are left to Twilio.
fn relay_attributes(relay: &RelayConfig, greeting: Option<&str>) -> Vec<(String, String)> {
    let greeting = Some(greeting.unwrap_or(relay.welcome_greeting.trim()))
        .filter(|greeting| !greeting.is_empty())
        .map(str::to_owned);
    [
        ("welcomeGreeting", greeting),
        ("language", relay.language.clone()),
        ("ttsProvider", relay.tts_provider.clone()),
        ("voice", relay.voice.clone()),
        (
            "transcriptionProvider",
            relay.transcription_provider.clone(),
        ),
        ("interruptible", relay.interruptible.clone()),
        (
            "dtmfDetection",
            relay.dtmf_detection.then(|| "true".to_owned()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
    .collect()
}

/// The stream or relay ended: a human if the call was escalated (an apology when no human
/// number is configured), else hang up.
pub async fn next(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = signed_form(&shared.config, &req, &body)?;
    let call = VoiceWebhook::from_form(&params)?;
    let after = engine
        .after_stream(&call.call_sid)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    let response = match after {
        AfterStream::Dial { number } => {
            // A warm transfer: the person hears a summary before the caller is connected,
            // and gets the transcript's link by text.
            super::calls::text_the_human(&engine, &call, None);
            Response::new().push(Verb::Dial {
                number,
                action: Some(
                    shared
                        .config
                        .server
                        .public_http_url("/twilio/voice/dial-result"),
                ),
                timeout_secs: Some(shared.config.twilio.dial_timeout_secs.clamp(5, 600)),
                whisper_url: Some(super::calls::whisper_url(&shared.config, &call.call_sid)),
            })
        }
        // No model is reachable: the key-press menu, not a hang-up (voice.menu).
        AfterStream::Menu => {
            Response::new().push(super::call_patterns::menu(&shared.config, true, 1))
        }
        AfterStream::NobodyToTakeIt => Response::new()
            .push(Verb::Say(NOBODY_TO_TAKE_IT.into()))
            .push(Verb::Hangup),
        // The stream broke while the caller was on the line: a new one continues the call
        // (on whichever node took this request), the caller hearing the hold prompt.
        AfterStream::Resume => {
            tracing::warn!(call_sid = %call.call_sid, "the stream broke; resuming the call");
            let mut parameters = call_parameters(&call);
            parameters.push((RESUMED_AFTER_DROP.into(), "1".into()));
            Response::new().push(connect(&shared.config, parameters, Some(RESUMED_RELAY)))
        }
        AfterStream::Voicemail => {
            let server = &shared.config.server;
            Response::new()
                .push(Verb::Say(VOICEMAIL_PROMPT.into()))
                .push(Verb::Record {
                    action: server.public_http_url("/twilio/voice/voicemail-done"),
                    max_length_secs: shared.config.twilio.voicemail_max_secs.clamp(2, 120),
                    transcribe_callback: server
                        .public_http_url("/twilio/voice/voicemail-transcription"),
                })
        }
        AfterStream::HangUp => Response::new().push(Verb::Hangup),
    };
    Ok(twiml(response))
}

/// `<Dial>` to `number`, back at `/twilio/voice/dial-result` when it ends.
fn dial(config: &EngineConfig, number: String) -> Verb {
    Verb::Dial {
        number,
        action: Some(config.server.public_http_url("/twilio/voice/dial-result")),
        timeout_secs: Some(config.twilio.dial_timeout_secs.clamp(5, 600)),
        whisper_url: None,
    }
}

/// `<Dial>` to `twilio.human_number` (callers check it is set; without one, the apology).
pub(super) fn dial_human(config: &EngineConfig) -> Verb {
    match &config.twilio.human_number {
        Some(number) => dial(config, number.clone()),
        None => Verb::Say(NOBODY_TO_TAKE_IT.into()),
    }
}

/// `<Record>`'s `action`: the voicemail is recorded (or the caller hung up). Its
/// transcription follows separately; the caller hears a goodbye.
pub async fn voicemail_done(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let params = signed_form(&engine.shared().config, &req, &body)?;
    let call = VoiceWebhook::from_form(&params)?;
    let duration = actors::protocol::twilio::webhook::form_get(&params, "RecordingDuration");
    tracing::info!(call_sid = %call.call_sid, ?duration, "voicemail recorded");
    Ok(twiml(
        Response::new()
            .push(Verb::Say(VOICEMAIL_DONE.into()))
            .push(Verb::Hangup),
    ))
}

/// `<Record>`'s `transcribeCallback` (protocols-more.md §3.2): the voicemail joins the
/// customer's record (once, however often Twilio retries), and the person taking
/// transfers gets its text — once.
pub async fn voicemail_transcription(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = signed_form(&shared.config, &req, &body)?;
    let voicemail = VoicemailTranscription::from_form(&params)?;
    let call_sid = voicemail.call.call_sid.clone();
    let unavailable = |err: actors::store::StoreError| RouteError::Unavailable(err.to_string());
    let customer = match customer_number(&voicemail.call) {
        Some(number) if !number.is_empty() => Some(number.to_owned()),
        _ => shared
            .store
            .get_call(&call_sid)
            .await
            .map_err(unavailable)?
            .and_then(|record| record.customer),
    };
    let Some(customer) = customer else {
        return Err(RouteError::BadRequest(
            "the voicemail's caller is unknown: no 'From' and no record of the call".into(),
        ));
    };
    tracing::info!(%call_sid, completed = voicemail.completed, "voicemail transcription");
    let said = voicemail.text.clone();
    shared
        .store
        .update_customer(
            &customer,
            &CustomerChange::Voicemail(Voicemail {
                call_sid: call_sid.clone(),
                recording_sid: voicemail.recording_sid.clone(),
                recording_url: voicemail.recording_url.clone(),
                text: said.clone(),
                at_ms: wall_clock_ms(),
            }),
        )
        .await
        .map_err(unavailable)?;
    let key = format!(
        "voicemail:{}",
        voicemail
            .transcription_sid
            .as_deref()
            .or(voicemail.recording_sid.as_deref())
            .unwrap_or(&call_sid)
    );
    let first = shared
        .store
        .first_sight(&key, wall_clock_ms())
        .await
        .map_err(unavailable)?;
    if first {
        let text = outreach::voicemail_text(
            Some(&customer),
            said.as_deref(),
            &engine.transcript_url(&call_sid),
        );
        let engine = engine.into_inner();
        actix_web::rt::spawn(async move { engine.tell_human(&text).await });
    }
    Ok(twiml(Response::new()))
}

/// The `<Dial>` to a person ended. If they talked, the call is over; if nobody answered
/// (busy, no answer, failed), the caller is not dropped: the assistant takes them back,
/// told what happened, with the conversation so far (SPEC §14, protocols-more.md §2.2).
pub async fn dial_result(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = signed_form(&shared.config, &req, &body)?;
    let result = DialResult::from_form(&params)?;
    let call_sid = &result.call.call_sid;
    let status = result.dial_call_status.as_deref().unwrap_or("unknown");
    if result.connected() {
        tracing::info!(%call_sid, status, "the transfer ended");
        return Ok(twiml(Response::new().push(Verb::Hangup)));
    }
    tracing::warn!(%call_sid, status, "the transfer did not go through; back to the assistant");
    super::calls::text_the_human(&engine, &result.call, Some(status));
    shared
        .store
        .clear_escalated(call_sid)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    let mut parameters = call_parameters(&result.call);
    parameters.push((RESUMED_AFTER_DIAL.into(), status.to_owned()));
    let response = match shared.config.voice_mode() {
        // Nobody else to hand them to: people answer in this mode.
        VoiceMode::Human => Response::new()
            .push(Verb::Say(NOBODY_TO_TAKE_IT.into()))
            .push(Verb::Hangup),
        VoiceMode::Relay => Response::new().push(connect(
            &shared.config,
            parameters,
            Some(TRANSFER_FAILED_RELAY),
        )),
        VoiceMode::Realtime | VoiceMode::Auto => Response::new()
            .push(Verb::Say(TRANSFER_FAILED.into()))
            .push(connect(&shared.config, parameters, None)),
    };
    Ok(twiml(response))
}

/// Call status callbacks: the socket's close already ended the `Call`; this records what
/// Twilio reports and answers quickly.
pub async fn status(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let params = signed_form(&engine.shared().config, &req, &body)?;
    let status = StatusCallback::from_form(&params)?;
    tracing::info!(call_sid = %status.call_sid, status = ?status.call_status, "call status");
    Ok(twiml(Response::new()))
}

/// Real-Time Transcription callbacks (SPEC §5.6). Final text and the transcription's own
/// events go into the call's record in the store, which owns that part of it (a live
/// call's snapshots keep it); a call our sockets never carried — a menu, a `<Dial>` — gets
/// an unbridged record, so its words are kept too.
pub async fn transcription(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = signed_form(&shared.config, &req, &body)?;
    let callback = TranscriptionCallback::from_form(&params)?;
    let call_sid = callback.call_sid.as_str();
    match &callback.event {
        TranscriptionEvent::Content => {
            tracing::debug!(%call_sid, track = ?callback.track, "transcription content")
        }
        TranscriptionEvent::Error => tracing::warn!(
            %call_sid,
            code = ?callback.error_code,
            error = ?callback.error,
            "transcription error"
        ),
        TranscriptionEvent::Other(event) => {
            tracing::info!(%call_sid, %event, "unknown transcription event ignored")
        }
        event => tracing::info!(%call_sid, ?event, "transcription"),
    }
    let Some(entry) = transcription_entry(&callback, wall_clock_ms()) else {
        return Ok(twiml(Response::new()));
    };
    shared
        .store
        .append_transcription(call_sid, &entry)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(twiml(Response::new()))
}
