//! TwiML rendering: the XML documents that answer Twilio's voice and messaging webhooks.
//!
//! Only the verbs switchboard answers with are modelled. Every piece of text and every
//! attribute value goes through [`escape_xml`], because agent replies, greetings and URLs
//! routinely contain `&`, quotes and `<` (a greeting interpolated unescaped is a known way to
//! break a call).

use std::borrow::Cow;
use std::fmt::Write as _;

/// A `<Parameter>` of our own: the call resumes after a `<Dial>` to a person that did not go
/// through; its value is Twilio's `DialCallStatus` (`no-answer`, `busy`, …).
pub const RESUMED_AFTER_DIAL: &str = "ResumedAfterDial";

/// A `<Parameter>` of our own: the call resumes after its stream broke (a node died, the
/// network failed) from the snapshot of its last turn.
pub const RESUMED_AFTER_DROP: &str = "ResumedAfterDrop";

/// A `<Parameter>` of our own: the stream is a one-way fork of a call people talk on
/// (`voice.mode = "human"`); the `Call` listens and transcribes instead of answering.
pub const LISTEN_IN: &str = "ListenIn";

/// One TwiML verb (with its nested nouns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Say>text</Say>`: text-to-speech.
    Say(String),
    /// `<Pause length="n"/>`, in seconds.
    Pause(u32),
    /// `<Hangup/>`.
    Hangup,
    /// `<Dial action? timeout?>number</Dial>`: hand the caller to a human. With an `action`,
    /// Twilio asks it what to do once the dialled leg ends (answered, busy, no answer), so
    /// an unanswered transfer need not end the call.
    Dial {
        number: String,
        action: Option<String>,
        timeout_secs: Option<u32>,
        /// A warm transfer: `<Number url>`, TwiML the person hears once they answer, before
        /// the caller is connected (protocols-more.md §2.3).
        whisper_url: Option<String>,
    },
    /// `<Record action maxLength playBeep="true" transcribe="true" transcribeCallback/>`: a
    /// voicemail (protocols-more.md §3). Nothing after it is reachable: `action` says what
    /// follows.
    Record {
        action: String,
        max_length_secs: u32,
        transcribe_callback: String,
    },
    /// `<Message>text</Message>`: an inline SMS/WhatsApp reply.
    Message(String),
    /// `<Play>url</Play>`: audio Twilio fetches and plays.
    Play(String),
    /// `<Start><noun …attributes><Parameter/>…</noun></Start>`: something that runs beside
    /// the rest of the call — `Transcription`, `Recording` or a one-way `Stream`
    /// (protocols-more.md §4.5, §5, §6). Twilio goes on with the next verb at once.
    Start {
        noun: &'static str,
        attributes: Vec<(String, String)>,
        parameters: Vec<(String, String)>,
    },
    /// `<Gather input="dtmf" numDigits action timeout actionOnEmptyResult="true">prompt</Gather>`:
    /// a key-press menu (protocols-more.md §8). `actionOnEmptyResult` makes Twilio ask
    /// `action` even when nothing was pressed, so one route handles every outcome; `prompt`
    /// holds `<Say>`/`<Play>` only.
    Gather {
        action: String,
        num_digits: u32,
        timeout_secs: u32,
        prompt: Vec<Verb>,
    },
    /// `<Connect action?><Stream url><Parameter/>…</Stream></Connect>`: a bidirectional Media
    /// Stream. The stream URL cannot carry a query string, so context travels in `parameters`.
    ConnectStream {
        action: Option<String>,
        url: String,
        parameters: Vec<(String, String)>,
    },
    /// `<Connect action?><ConversationRelay url …attributes><Parameter/>…</ConversationRelay></Connect>`.
    /// `attributes` are `ConversationRelay` attributes such as `welcomeGreeting` or `voice`.
    ConnectRelay {
        action: Option<String>,
        url: String,
        attributes: Vec<(String, String)>,
        parameters: Vec<(String, String)>,
    },
}

/// A `<Response>` document, built verb by verb.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    verbs: Vec<Verb>,
}

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a verb; verbs run top to bottom.
    pub fn push(mut self, verb: Verb) -> Self {
        self.verbs.push(verb);
        self
    }

    /// The whole document, with the XML declaration and no whitespace between elements.
    /// An empty response renders as `<Response/>` (the answer to status callbacks and to
    /// messages replied to over REST).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str(XML_DECLARATION);
        if self.verbs.is_empty() {
            out.push_str("<Response/>");
            return out;
        }
        out.push_str("<Response>");
        for verb in &self.verbs {
            render_verb(&mut out, verb);
        }
        out.push_str("</Response>");
        out
    }
}

fn render_verb(out: &mut String, verb: &Verb) {
    match verb {
        Verb::Say(text) => text_element(out, "Say", text),
        Verb::Pause(seconds) => {
            // Writing to a String cannot fail.
            let _ = write!(out, r#"<Pause length="{seconds}"/>"#);
        }
        Verb::Hangup => out.push_str("<Hangup/>"),
        Verb::Dial {
            number,
            action,
            timeout_secs,
            whisper_url,
        } => {
            out.push_str("<Dial");
            if let Some(action) = action {
                attribute(out, "action", action);
            }
            if let Some(timeout) = timeout_secs {
                attribute(out, "timeout", &timeout.to_string());
            }
            out.push('>');
            match whisper_url {
                Some(url) => {
                    out.push_str("<Number");
                    attribute(out, "url", url);
                    out.push('>');
                    out.push_str(&escape_xml(number));
                    out.push_str("</Number>");
                }
                None => out.push_str(&escape_xml(number)),
            }
            out.push_str("</Dial>");
        }
        Verb::Record {
            action,
            max_length_secs,
            transcribe_callback,
        } => {
            out.push_str("<Record");
            attribute(out, "action", action);
            attribute(out, "method", "POST");
            attribute(out, "maxLength", &max_length_secs.to_string());
            attribute(out, "playBeep", "true");
            attribute(out, "transcribe", "true");
            attribute(out, "transcribeCallback", transcribe_callback);
            out.push_str("/>");
        }
        Verb::Message(text) => text_element(out, "Message", text),
        Verb::Play(url) => text_element(out, "Play", url),
        Verb::Start {
            noun,
            attributes,
            parameters,
        } => {
            out.push_str("<Start><");
            out.push_str(noun);
            for (name, value) in attributes {
                attribute(out, name, value);
            }
            close_with_parameters(out, noun, parameters);
            out.push_str("</Start>");
        }
        Verb::Gather {
            action,
            num_digits,
            timeout_secs,
            prompt,
        } => {
            out.push_str("<Gather");
            attribute(out, "input", "dtmf");
            attribute(out, "numDigits", &num_digits.to_string());
            attribute(out, "timeout", &timeout_secs.to_string());
            attribute(out, "action", action);
            attribute(out, "method", "POST");
            attribute(out, "actionOnEmptyResult", "true");
            out.push('>');
            for verb in prompt {
                if matches!(verb, Verb::Say(_) | Verb::Play(_) | Verb::Pause(_)) {
                    render_verb(out, verb);
                }
            }
            out.push_str("</Gather>");
        }
        Verb::ConnectStream {
            action,
            url,
            parameters,
        } => connect(out, action.as_deref(), "Stream", url, &[], parameters),
        Verb::ConnectRelay {
            action,
            url,
            attributes,
            parameters,
        } => connect(
            out,
            action.as_deref(),
            "ConversationRelay",
            url,
            attributes,
            parameters,
        ),
    }
}

fn text_element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape_xml(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn connect(
    out: &mut String,
    action: Option<&str>,
    noun: &str,
    url: &str,
    attributes: &[(String, String)],
    parameters: &[(String, String)],
) {
    out.push_str("<Connect");
    if let Some(action) = action {
        attribute(out, "action", action);
    }
    out.push_str("><");
    out.push_str(noun);
    attribute(out, "url", url);
    for (name, value) in attributes {
        attribute(out, name, value);
    }
    close_with_parameters(out, noun, parameters);
    out.push_str("</Connect>");
}

/// Ends the open tag of `noun`: `/>`, or its `<Parameter>` children and the closing tag.
fn close_with_parameters(out: &mut String, noun: &str, parameters: &[(String, String)]) {
    if parameters.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        for (name, value) in parameters {
            out.push_str("<Parameter");
            attribute(out, "name", name);
            attribute(out, "value", value);
            out.push_str("/>");
        }
        out.push_str("</");
        out.push_str(noun);
        out.push('>');
    }
}

/// Writes ` name="value"`. Attribute names come from code and configuration, not from
/// callers; a name that is not a valid XML name is skipped rather than allowed to break
/// the whole document.
fn attribute(out: &mut String, name: &str, value: &str) {
    if !is_xml_name(name) {
        return;
    }
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    out.push_str(&escape_xml(value));
    out.push('"');
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Escapes text for use both as element content and inside a double-quoted attribute.
///
/// `&`, `<`, `>`, `"` and `'` become entities; tab, newline and carriage return become
/// character references so attribute values keep them; characters XML 1.0 forbids
/// altogether (other C0 controls, U+FFFE, U+FFFF) are dropped, since no escape can carry
/// them and Twilio would reject the document. Borrows when nothing needs changing.
pub fn escape_xml(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if is_forbidden_in_xml(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'') || c < ' ' || is_forbidden_in_xml(c)
}

fn is_forbidden_in_xml(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn a_voicemail_record_transcribes_and_has_an_action() {
        let xml = Response::new()
            .push(Verb::Record {
                action: "https://sb.example.com/vm?a=1&b=2".into(),
                max_length_secs: 120,
                transcribe_callback: "https://sb.example.com/tr".into(),
            })
            .render();
        assert_eq!(
            xml,
            format!(
                r#"{DECL}<Response><Record action="https://sb.example.com/vm?a=1&amp;b=2" method="POST" maxLength="120" playBeep="true" transcribe="true" transcribeCallback="https://sb.example.com/tr"/></Response>"#
            )
        );
    }

    #[test]
    fn a_dial_with_an_action_and_a_timeout() {
        let xml = Response::new()
            .push(Verb::Dial {
                number: "+15551234567".into(),
                action: Some("https://example.com/twilio/voice/dial-result?a=1&b=2".into()),
                timeout_secs: Some(20),
                whisper_url: None,
            })
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Dial action=\"https://example.com/twilio/voice/dial-result?a=1&amp;b=2\" \
                 timeout=\"20\">+15551234567</Dial></Response>"
            )
        );
    }

    #[test]
    fn start_nouns_a_play_and_a_gather_with_its_prompt() {
        let xml = Response::new()
            .push(Verb::Start {
                noun: "Transcription",
                attributes: vec![(
                    "statusCallbackUrl".into(),
                    "https://x.test/twilio/transcription".into(),
                )],
                parameters: vec![],
            })
            .push(Verb::Start {
                noun: "Stream",
                attributes: vec![("url".into(), "wss://x.test/m".into())],
                parameters: vec![("CallSid".into(), "CA1".into())],
            })
            .push(Verb::Play("https://x.test/a.wav?x=1&y=2".into()))
            .push(Verb::Gather {
                action: "https://x.test/twilio/voice/menu?attempt=1&fallback=0".into(),
                num_digits: 1,
                timeout_secs: 6,
                prompt: vec![Verb::Say("Press 1".into()), Verb::Hangup],
            })
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Start><Transcription statusCallbackUrl=\"https://x.test/twilio/transcription\"/></Start>\
                 <Start><Stream url=\"wss://x.test/m\"><Parameter name=\"CallSid\" value=\"CA1\"/></Stream></Start>\
                 <Play>https://x.test/a.wav?x=1&amp;y=2</Play>\
                 <Gather input=\"dtmf\" numDigits=\"1\" timeout=\"6\" \
                 action=\"https://x.test/twilio/voice/menu?attempt=1&amp;fallback=0\" method=\"POST\" \
                 actionOnEmptyResult=\"true\"><Say>Press 1</Say></Gather></Response>"
            )
        );
    }

    #[test]
    fn empty_response_is_self_closing() {
        assert_eq!(Response::new().render(), format!("{DECL}<Response/>"));
        assert_eq!(Response::default().render(), Response::new().render());
    }

    #[test]
    fn simple_verbs_render_in_order() {
        let xml = Response::new()
            .push(Verb::Say("Hello".into()))
            .push(Verb::Pause(1))
            .push(Verb::Dial {
                number: "+15551234567".into(),
                action: None,
                timeout_secs: None,
                whisper_url: None,
            })
            .push(Verb::Hangup)
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say>Hello</Say><Pause length=\"1\"/>\
                 <Dial>+15551234567</Dial><Hangup/></Response>"
            )
        );
    }

    #[test]
    fn message_reply_matches_the_helper_library_shape() {
        let xml = Response::new().push(Verb::Message("Hello".into())).render();
        assert_eq!(
            xml,
            format!("{DECL}<Response><Message>Hello</Message></Response>")
        );
    }

    #[test]
    fn connect_stream_with_parameters() {
        let xml = Response::new()
            .push(Verb::ConnectStream {
                action: Some("https://example.com/twilio/voice/next?a=1&b=2".into()),
                url: "wss://example.com/twilio/media".into(),
                parameters: vec![
                    ("customer".into(), "+15551234567".into()),
                    ("agent".into(), "Tom & \"Jerry\"".into()),
                ],
            })
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Connect action=\"https://example.com/twilio/voice/next?a=1&amp;b=2\">\
                 <Stream url=\"wss://example.com/twilio/media\">\
                 <Parameter name=\"customer\" value=\"+15551234567\"/>\
                 <Parameter name=\"agent\" value=\"Tom &amp; &quot;Jerry&quot;\"/>\
                 </Stream></Connect></Response>"
            )
        );
    }

    #[test]
    fn connect_without_action_or_parameters() {
        let xml = Response::new()
            .push(Verb::ConnectStream {
                action: None,
                url: "wss://h/m".into(),
                parameters: vec![],
            })
            .render();
        assert_eq!(
            xml,
            format!("{DECL}<Response><Connect><Stream url=\"wss://h/m\"/></Connect></Response>")
        );
    }

    #[test]
    fn connect_relay_escapes_a_greeting_with_quotes_and_ampersands() {
        let xml = Response::new()
            .push(Verb::ConnectRelay {
                action: Some("/twilio/voice/next".into()),
                url: "wss://example.com/twilio/relay".into(),
                attributes: vec![
                    ("welcomeGreeting".into(), "Hi! It's \"Bob\" & <Co>".into()),
                    ("bad name\" onload=\"x".into(), "dropped".into()),
                ],
                parameters: vec![("k".into(), "v".into())],
            })
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Connect action=\"/twilio/voice/next\">\
                 <ConversationRelay url=\"wss://example.com/twilio/relay\" \
                 welcomeGreeting=\"Hi! It&apos;s &quot;Bob&quot; &amp; &lt;Co&gt;\">\
                 <Parameter name=\"k\" value=\"v\"/></ConversationRelay></Connect></Response>"
            )
        );
    }

    #[test]
    fn text_content_is_escaped() {
        let xml = Response::new()
            .push(Verb::Say("Tom & Jerry <3 \"q\"".into()))
            .render();
        assert!(
            xml.contains("<Say>Tom &amp; Jerry &lt;3 &quot;q&quot;</Say>"),
            "{xml}"
        );
    }

    #[test]
    fn escape_xml_borrows_clean_text_and_keeps_unicode() {
        assert!(matches!(
            escape_xml("plain text, ünïcødé ✓ 日本語 🎉"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_xml("café & crème"), "café &amp; crème");
        assert_eq!(escape_xml(""), "");
    }

    #[test]
    fn escape_xml_matches_the_reference_attribute_rendering() {
        // ElementTree renders the attribute a"b<c>&d'e\nf as a&quot;b&lt;c&gt;&amp;d'e&#10;f;
        // `'` is escaped here too, which is equivalent.
        assert_eq!(
            escape_xml("a\"b<c>&d'e\nf"),
            "a&quot;b&lt;c&gt;&amp;d&apos;e&#10;f"
        );
        assert_eq!(escape_xml("tab\there\r"), "tab&#9;here&#13;");
        assert_eq!(
            escape_xml("example.com?id=34&action=hey"),
            "example.com?id=34&amp;action=hey"
        );
    }

    #[test]
    fn escape_xml_drops_characters_xml_cannot_carry() {
        assert_eq!(escape_xml("a\u{0}b\u{1b}c\u{FFFF}d"), "abcd");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_markup_characters(s in ".*") {
            let escaped = escape_xml(&s);
            proptest::prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            // Every `&` starts an entity or character reference.
            for (i, _) in escaped.match_indices('&') {
                let rest = &escaped[i..];
                proptest::prop_assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#9;", "&#10;", "&#13;"]
                        .iter()
                        .any(|entity| rest.starts_with(entity))
                );
            }
        }
    }

    #[test]
    fn a_warm_transfer_whispers_to_the_number_first() {
        let xml = Response::new()
            .push(Verb::Dial {
                number: "+15551234567".into(),
                action: None,
                timeout_secs: None,
                whisper_url: Some("https://example.com/twilio/voice/whisper?call=CA1&x=2".into()),
            })
            .render();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Dial><Number url=\"https://example.com/twilio/voice/whisper?call=CA1&amp;x=2\">\
                 +15551234567</Number></Dial></Response>"
            )
        );
    }
}
