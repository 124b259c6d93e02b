//! `POST /twilio/messaging` (SMS, MMS, WhatsApp) and `POST /twilio/conversations`
//! (Twilio Conversations `onMessageAdded`): customer text for their `Conversation`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::{signed_form, twiml, RouteError};
use actors::config::ReplyMode;
use actors::conversation::messages::Channel;
use actors::domain::identity;
use actors::domain::records::mask_phone;
use actors::domain::sms::{split_body, MAX_BODY_CHARS};
use actors::engine::{IncomingText, Reply};
use actors::outbound::Destination;
use actors::protocol::twilio::twiml::{Response, Verb};
use actors::protocol::twilio::webhook::{ConversationsWebhook, MessagingWebhook};
use actors::registry::messages::Refusal;
use actors::Engine;

/// Sent inline when the answer misses the deadline and there is no REST fallback.
const SLOW_APOLOGY: &str =
    "Sorry, that is taking longer than it should. Please send your message again in a minute.";
/// Sent when every conversation slot is taken.
const BUSY: &str = "Sorry, we are very busy right now. Please try again in a few minutes.";

/// Per-sender limit: a sender over it gets an empty answer and no model call (counted).
async fn within_sender_limit(engine: &Engine, customer: &str) -> bool {
    if engine.shared().limits.allow_sender(customer).await {
        return true;
    }
    tracing::warn!(from = %mask_phone(customer), "sender over the message limit; ignored");
    actors::metrics::rate_limited("sender");
    false
}

/// An incoming SMS, MMS or WhatsApp message.
pub async fn incoming(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let config = &engine.shared().config;
    let params = signed_form(config, &req, &body)?;
    let msg = MessagingWebhook::from_form(&params)?;
    let channel = if msg.is_whatsapp() {
        Channel::Whatsapp
    } else {
        Channel::Sms
    };
    let customer = identity::sender_key(&msg.from, config.country());
    if !within_sender_limit(&engine, &customer).await {
        return Ok(twiml(Response::new()));
    }
    tracing::info!(from = %mask_phone(&customer), channel = channel.as_str(), "message received");
    tracing::debug!(body = %msg.body, "message body");
    let text = with_media(&msg);
    // Replies go back to the address written from, from the address written to.
    let destination = Destination::Message {
        to: identity::reply_address(&msg.from, &customer),
        from: Some(msg.to.clone()),
    };
    let (reply, has_fallback) = match config.reply_mode() {
        ReplyMode::Rest | ReplyMode::Auto => (Reply::Rest(destination), true),
        ReplyMode::Twiml => {
            let fallback = config.twilio.credentials().map(|_| destination);
            let has_fallback = fallback.is_some();
            (Reply::Inline { fallback }, has_fallback)
        }
    };
    let incoming = IncomingText {
        customer,
        channel,
        text,
        reply,
        // Twilio retries a webhook it thinks failed: each `MessageSid` is taken once.
        message_id: Some(msg.message_sid.clone()),
    };
    let answer = match engine.receive_text(incoming).await {
        Ok(answer) => answer,
        Err(refusal @ Refusal::NotRecorded) => {
            return Err(RouteError::Unavailable(refusal.to_string()))
        }
        Err(_) => return Ok(twiml(Response::new().push(Verb::Message(BUSY.into())))),
    };
    let Some(answer) = answer else {
        return Ok(twiml(Response::new()));
    };
    let deadline = Duration::from_millis(config.messaging.deadline_ms);
    match answer.within(deadline).await {
        Some(text) => Ok(twiml(
            split_body(&text, MAX_BODY_CHARS)
                .into_iter()
                .fold(Response::new(), |r, part| r.push(Verb::Message(part))),
        )),
        // Too slow: the conversation will send the answer over REST.
        None if has_fallback => Ok(twiml(Response::new())),
        None => Ok(twiml(
            Response::new().push(Verb::Message(SLOW_APOLOGY.into())),
        )),
    }
}

/// The message text, with attachments acknowledged so the agent can mention them.
fn with_media(msg: &MessagingWebhook) -> String {
    let urls: Vec<String> = msg.media.iter().map(|m| m.url.clone()).collect();
    with_attachments(&msg.body, &urls)
}

/// `body` with a note of the customer's attachments, if any (MMS, WhatsApp and
/// Conversations alike).
fn with_attachments(body: &str, attachments: &[String]) -> String {
    if attachments.is_empty() {
        return body.to_owned();
    }
    let note = format!(
        "[The customer attached {} file(s): {}]",
        attachments.len(),
        attachments.join(" ")
    );
    if body.trim().is_empty() {
        note
    } else {
        format!("{body}\n{note}")
    }
}

/// The attachments of a Conversations message: its `Media` field, a stringified JSON
/// array whose element keys are not documented for webhooks (protocols-more.md §11.3), so
/// read leniently — each named by its file name, else its content type, else its sid.
/// Anything unreadable still counts as one attachment rather than being dropped.
fn conversation_media(media: Option<&str>) -> Vec<String> {
    let Some(media) = media
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "null")
    else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(media)
    else {
        return vec!["(an attachment)".to_owned()];
    };
    items
        .iter()
        .take(10)
        .map(|item| {
            [
                "filename",
                "Filename",
                "content_type",
                "ContentType",
                "sid",
                "Sid",
            ]
            .iter()
            .find_map(|key| item.get(key).and_then(|v| v.as_str()))
            .filter(|name| !name.trim().is_empty())
            .map(|name| name.chars().take(100).collect())
            .unwrap_or_else(|| "(an attachment)".to_owned())
        })
        .collect()
}

/// A Twilio Conversations webhook. Only `onMessageAdded` by someone other than us is
/// answered, once per message, through the Conversations REST API; Twilio gets its `200`
/// at once (its webhooks time out after 5 s).
pub async fn conversations(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let config = &engine.shared().config;
    let params = signed_form(config, &req, &body)?;
    let event = actors::protocol::twilio::webhook::form_get(&params, "EventType").unwrap_or("");
    if event != "onMessageAdded" {
        return Ok(HttpResponse::Ok().finish());
    }
    let msg = ConversationsWebhook::from_form(&params)?;
    if msg.author == config.messaging.bot_identity {
        return Ok(HttpResponse::Ok().finish());
    }
    // A phone participant is the same customer as on SMS; chat identities stay apart.
    let customer = identity::conversations_key(&msg.author, config.country());
    if !within_sender_limit(&engine, &customer).await {
        return Ok(HttpResponse::Ok().finish());
    }
    let incoming = IncomingText {
        customer,
        channel: Channel::Conversations,
        text: with_attachments(&msg.body, &conversation_media(msg.media.as_deref())),
        // Replies go to the conversation's own service whenever the webhook names it.
        reply: Reply::Rest(Destination::Conversation {
            sid: msg.conversation_sid.clone(),
            service: msg.chat_service_sid.clone(),
        }),
        message_id: Some(msg.message_sid.clone()),
    };
    match engine.receive_text(incoming).await {
        Ok(_) => {}
        // Twilio retries the webhook (its `RetryCount` grows): nothing is lost.
        Err(refusal @ Refusal::NotRecorded) => {
            return Err(RouteError::Unavailable(refusal.to_string()))
        }
        Err(refusal) => tracing::warn!(%refusal, "Conversations message not taken"),
    }
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_media_is_acknowledged_however_it_is_written() {
        let two = conversation_media(Some(
            r#"[{"sid":"ME1","content_type":"image/jpeg","filename":"bike.jpg","size":1},{"sid":"ME2","content_type":"application/pdf"}]"#,
        ));
        assert_eq!(two, vec!["bike.jpg", "application/pdf"]);
        assert_eq!(
            with_attachments("", &two),
            "[The customer attached 2 file(s): bike.jpg application/pdf]"
        );
        assert_eq!(
            with_attachments("see this", &two[..1]),
            "see this\n[The customer attached 1 file(s): bike.jpg]"
        );
        assert!(conversation_media(None).is_empty());
        assert!(conversation_media(Some("null")).is_empty());
        assert!(conversation_media(Some("[]")).is_empty());
        assert_eq!(conversation_media(Some("{not json")).len(), 1);
        assert_eq!(conversation_media(Some("[{}]")), vec!["(an attachment)"]);
    }
}
