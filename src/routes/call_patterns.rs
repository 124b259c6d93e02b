//! The call patterns of `voice.*` (issue 9): what every incoming call's TwiML starts with —
//! Real-Time Transcription, recording, the consent notice — the key-press menu
//! (`POST /twilio/voice/menu`, up front or as the fallback when no model is reachable) and
//! recording status callbacks (`POST /twilio/recording`). Every route is a signed Twilio
//! webhook; field facts are from protocols-more.md §4, §5 and §8.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{signed_form, twiml, voice, RouteError};
use actors::clock::wall_clock_ms;
use actors::config::{ConsentNotice, EngineConfig, MenuChoice, VoiceMode};
use actors::domain::records::{mask_phone, RecordingEntry};
use actors::outbound::{self, Destination};
use actors::protocol::twilio::twiml::{Response, Verb, LISTEN_IN};
use actors::protocol::twilio::webhook::{GatherResult, RecordingCallback, VoiceWebhook};
use actors::Engine;

/// Said before the menu is offered again after no key or a key it does not have.
const NOT_UNDERSTOOD: &str = "Sorry, I didn't get that.";
/// Said before a `<Dial>` to the person.
const CONNECTING: &str = "Connecting you to a colleague.";
/// After the text with the link went out.
const TEXT_SENT: &str =
    "We have sent you a text message with a link to chat with us. Thank you for calling. Goodbye.";
/// When no choice of the menu can be carried out (nobody to dial, no way to text).
const NOTHING_LEFT: &str =
    "Sorry, nobody can take your call right now. Please call again later. Goodbye.";
/// The text could not be sent.
const TEXT_FAILED: &str =
    "Sorry, we could not send the text message. Please call again later. Goodbye.";
/// The menu is offered this many times before its default choice is taken.
const MENU_ATTEMPTS: u32 = 2;

/// What every incoming call's TwiML starts with, before the assistant or the menu:
/// `<Start><Transcription>` (`voice.transcription`), `<Start><Recording>` (`voice.record`),
/// then the consent notice (`voice.consent_notice`). `<Start>` runs for the whole call, so
/// TwiML that continues a call (after a `<Dial>`, a broken stream, a menu) does not repeat it.
pub(super) fn prelude(config: &EngineConfig) -> Vec<Verb> {
    let voice = &config.voice;
    let mut verbs = Vec::new();
    if voice.transcription {
        let mut attributes = vec![
            (
                "statusCallbackUrl".to_owned(),
                config.server.public_http_url("/twilio/transcription"),
            ),
            ("track".to_owned(), "both_tracks".to_owned()),
            ("inboundTrackLabel".to_owned(), "caller".to_owned()),
            ("outboundTrackLabel".to_owned(), "switchboard".to_owned()),
        ];
        let language = voice.transcription_language.trim();
        if !language.is_empty() {
            attributes.push(("languageCode".to_owned(), language.to_owned()));
        }
        verbs.push(Verb::Start {
            noun: "Transcription",
            attributes,
            parameters: Vec::new(),
        });
    }
    if voice.record {
        // Channels and trim set explicitly: their defaults differ between the ways of
        // recording (§4.5).
        verbs.push(Verb::Start {
            noun: "Recording",
            attributes: [
                (
                    "recordingStatusCallback",
                    config.server.public_http_url("/twilio/recording"),
                ),
                ("recordingStatusCallbackMethod", "POST".to_owned()),
                (
                    "recordingStatusCallbackEvent",
                    "in-progress completed absent".to_owned(),
                ),
                ("channels", "dual".to_owned()),
                ("track", "both".to_owned()),
                ("trim", "do-not-trim".to_owned()),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
            parameters: Vec::new(),
        });
    }
    match voice.consent() {
        Some(ConsentNotice::Say(text)) => verbs.push(Verb::Say(text.to_owned())),
        Some(ConsentNotice::Play(url)) => verbs.push(Verb::Play(url.to_owned())),
        Some(ConsentNotice::PlayPrompt(name)) => verbs.push(Verb::Play(
            config.server.public_http_url(&format!("/prompts/{name}")),
        )),
        None => {}
    }
    verbs
}

/// `voice.mode = "human"`: people answer and switchboard listens — a one-way
/// `<Start><Stream track="both_tracks">` to the media socket (its `Call` transcribes both
/// parties, protocols-more.md §6.3), then `<Dial>` to `twilio.human_number`. Without a
/// number there is nobody to answer: the apology.
pub(super) fn listen_in(config: &EngineConfig, mut parameters: Vec<(String, String)>) -> Vec<Verb> {
    if config.twilio.human_number.is_none() {
        return vec![voice::dial_human(config), Verb::Hangup];
    }
    parameters.push((LISTEN_IN.to_owned(), "1".to_owned()));
    vec![
        Verb::Start {
            noun: "Stream",
            attributes: vec![
                (
                    "url".to_owned(),
                    config.server.public_ws_url("/twilio/media"),
                ),
                ("track".to_owned(), "both_tracks".to_owned()),
                ("name".to_owned(), "listen".to_owned()),
            ],
            parameters,
        },
        voice::dial_human(config),
    ]
}

/// The menu: `<Gather numDigits="1">` with its prompt, asking `/twilio/voice/menu` whatever
/// happens (a key, or none). `fallback`: no model is reachable, so the assistant is not
/// offered. `attempt` counts the offers (the second one ends in the default choice).
pub(super) fn menu(config: &EngineConfig, fallback: bool, attempt: u32) -> Verb {
    let menu = &config.voice.menu;
    let prompt = if fallback {
        &menu.fallback_prompt
    } else {
        &menu.prompt
    };
    Verb::Gather {
        action: config.server.public_http_url(&format!(
            "/twilio/voice/menu?attempt={attempt}&fallback={}",
            u8::from(fallback)
        )),
        num_digits: 1,
        timeout_secs: menu.timeout_secs,
        prompt: vec![Verb::Say(prompt.clone())],
    }
}

/// Which menu this `<Gather>` answered (its `action` query).
#[derive(Debug, serde::Deserialize)]
pub struct MenuQuery {
    attempt: u32,
    fallback: u8,
}

/// `POST /twilio/voice/menu`: the caller pressed a key, or none. A key the menu has (and
/// can carry out now) is done; otherwise the menu is offered once more, then its default
/// choice is taken — or the next one that can be carried out.
pub async fn menu_choice(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let config = &shared.config;
    let params = signed_form(config, &req, &body)?;
    let query = web::Query::<MenuQuery>::from_query(req.query_string())
        .map_err(|err| RouteError::BadRequest(format!("menu query: {err}")))?;
    let gathered = GatherResult::from_form(&params)?;
    let fallback = query.fallback != 0 || engine.shared().health.model_unreachable();
    let call_sid = &gathered.call.call_sid;
    let pressed = gathered
        .digits
        .as_deref()
        .and_then(|digits| config.voice.menu.choice(digits))
        .filter(|choice| possible(config, *choice, fallback));
    let choice = match pressed {
        Some(choice) => choice,
        None if query.attempt < MENU_ATTEMPTS => {
            tracing::info!(%call_sid, digits = ?gathered.digits, "menu: no usable key; offered again");
            return Ok(twiml(
                Response::new()
                    .push(Verb::Say(NOT_UNDERSTOOD.into()))
                    .push(menu(config, fallback, query.attempt + 1)),
            ));
        }
        None => match default_choice(config, fallback) {
            Some(choice) => choice,
            None => {
                tracing::warn!(%call_sid, "menu: nothing the caller could be offered");
                return Ok(twiml(
                    Response::new()
                        .push(Verb::Say(NOTHING_LEFT.into()))
                        .push(Verb::Hangup),
                ));
            }
        },
    };
    tracing::info!(%call_sid, ?choice, fallback, "menu choice");
    let response = match choice {
        MenuChoice::Agent => Response::new().push(voice::connect(
            config,
            voice::call_parameters(&gathered.call),
            None,
        )),
        MenuChoice::Human => Response::new()
            .push(Verb::Say(CONNECTING.into()))
            .push(voice::dial_human(config)),
        MenuChoice::Sms => text_the_link(config, &gathered.call).await,
    };
    Ok(twiml(response))
}

/// Whether `choice` can be carried out now.
fn possible(config: &EngineConfig, choice: MenuChoice, fallback: bool) -> bool {
    match choice {
        MenuChoice::Agent => !fallback && config.voice_mode() != VoiceMode::Human,
        MenuChoice::Human => config.twilio.human_number.is_some(),
        MenuChoice::Sms => {
            config.twilio.credentials().is_some()
                && (config.twilio.phone_number.is_some()
                    || config.twilio.messaging_service_sid.is_some())
        }
    }
}

/// The menu's default, or when it cannot be carried out, the first that can: a person,
/// then the text, then (not in a fallback) the assistant.
fn default_choice(config: &EngineConfig, fallback: bool) -> Option<MenuChoice> {
    [
        config.voice.menu.default,
        MenuChoice::Human,
        MenuChoice::Sms,
        MenuChoice::Agent,
    ]
    .into_iter()
    .find(|choice| possible(config, *choice, fallback))
}

/// Texts the caller the menu's link (from the number they called), then says goodbye.
async fn text_the_link(config: &EngineConfig, call: &VoiceWebhook) -> Response {
    let Some(to) = call.from.as_deref().filter(|from| from.starts_with('+')) else {
        tracing::warn!(call_sid = %call.call_sid, "menu: the caller has no number to text");
        return Response::new()
            .push(Verb::Say(TEXT_FAILED.into()))
            .push(Verb::Hangup);
    };
    let text = config.voice.menu.sms_text.replace(
        "{PUBLIC_URL}",
        config.server.public_url.trim_end_matches('/'),
    );
    let destination = Destination::Message {
        to: to.to_owned(),
        from: call.to.clone().filter(|number| number.starts_with('+')),
    };
    match outbound::deliver(config, &destination, &text).await {
        Ok(()) => Response::new()
            .push(Verb::Say(TEXT_SENT.into()))
            .push(Verb::Hangup),
        Err(err) => {
            tracing::warn!(call_sid = %call.call_sid, to = %mask_phone(to), error = %err, "menu: the text was not sent");
            Response::new()
                .push(Verb::Say(TEXT_FAILED.into()))
                .push(Verb::Hangup)
        }
    }
}

/// `GET /prompts/{name}`: the consent notice's audio file, for Twilio's `<Play>` to fetch.
/// Only the file `voice.consent_notice` names is served; anything else is `404`.
pub async fn prompt_audio(
    engine: web::Data<Engine>,
    name: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let voice = &engine.shared().config.voice;
    let name = name.into_inner();
    let Some(ConsentNotice::PlayPrompt(configured)) = voice.consent() else {
        return Ok(HttpResponse::NotFound().finish());
    };
    if name != configured {
        return Ok(HttpResponse::NotFound().finish());
    }
    let path = voice.prompts_dir.join(configured);
    let bytes = web::block(move || std::fs::read(path))
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?
        .map_err(|err| RouteError::Unavailable(format!("consent audio unreadable: {err}")))?;
    let content_type = if name.to_ascii_lowercase().ends_with(".mp3") {
        "audio/mpeg"
    } else {
        "audio/wav"
    };
    Ok(HttpResponse::Ok().content_type(content_type).body(bytes))
}

/// `POST /twilio/recording`: a recording's status (`voice.record`). Its sid, URL and
/// status go on the call's record (an unbridged one if our sockets never carried the call).
pub async fn recording(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = signed_form(&shared.config, &req, &body)?;
    let callback = RecordingCallback::from_form(&params)?;
    tracing::info!(
        call_sid = %callback.call_sid,
        recording_sid = %callback.recording_sid,
        status = %callback.recording_status,
        "recording status"
    );
    let entry = RecordingEntry {
        sid: callback.recording_sid,
        url: callback.recording_url,
        status: callback.recording_status,
        duration_secs: callback.recording_duration,
        channels: callback.recording_channels,
        source: callback.recording_source,
        at_ms: wall_clock_ms(),
    };
    shared
        .store
        .note_recording(&callback.call_sid, &entry)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(twiml(Response::new()))
}
