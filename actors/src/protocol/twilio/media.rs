//! Media Streams frames: the JSON text messages of a bidirectional `<Connect><Stream>` socket.
//!
//! Inbound frames (Twilio → server) arrive every 20 ms per call, so [`parse_inbound`] reads
//! each frame in one pass straight into its typed variant: no intermediate `Value`, no
//! buffering of the whole frame. Parsing is lenient where Twilio's documentation is loose
//! (`sequenceNumber`, `chunk` and `timestamp` may be strings or numbers; unknown events and
//! unknown fields are ignored) and strict where a missing field would break the call.
//!
//! Outbound frames (server → Twilio) carry exactly the documented fields: Twilio rejects
//! "missing or extra field" with warning 31951. The `*_message` functions build them without
//! copying the audio payload.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text frame from Twilio could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The frame is not JSON at all (or is truncated).
    #[error("frame is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The frame is JSON, but a known event lacks a field or has one of the wrong type.
    #[error("malformed frame: {0}")]
    Malformed(#[source] serde_json::Error),
}

impl MediaError {
    /// A short, fixed label for the `switchboard_bad_frames_total{reason}` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            MediaError::NotJson(_) => "not_json",
            MediaError::Malformed(_) => "malformed",
        }
    }

    fn classify(err: serde_json::Error) -> Self {
        match err.classify() {
            serde_json::error::Category::Data => MediaError::Malformed(err),
            _ => MediaError::NotJson(err),
        }
    }
}

/// A frame Twilio sends on the Media Streams socket.
///
/// Serializes back to the wire shape (counters as strings, as Twilio writes them), so a fake
/// Twilio can build frames from these types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    Connected(Connected),
    Start(Start),
    Media(Media),
    Dtmf(Dtmf),
    Mark(MarkEvent),
    Stop(Stop),
    /// An event this server does not know; ignored for forward compatibility.
    Unknown,
}

/// The first frame of every socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connected {
    /// `"Call"` for Media Streams.
    pub protocol: String,
    pub version: String,
}

/// Sent once, right after `connected`: identifies the call and the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    pub stream_sid: String,
    #[serde(with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub start: StartMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartMeta {
    pub account_sid: String,
    pub stream_sid: String,
    pub call_sid: String,
    /// `inbound` / `outbound` (no `_track` suffix here, unlike the TwiML attribute).
    #[serde(default)]
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of the `<Stream>` TwiML: how the webhook hands context to the socket.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

/// Always μ-law 8 kHz mono on Media Streams; carried so a mismatch can be detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u32,
}

/// One chunk of caller audio (the hot path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    pub stream_sid: String,
    #[serde(with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub media: MediaPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    #[serde(default, with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    /// Milliseconds since the stream started: the clock barge-in arithmetic runs on.
    #[serde(default, with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Base64 μ-law 8 kHz, no file header.
    pub payload: String,
}

/// A key the caller pressed (bidirectional streams only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dtmf {
    pub stream_sid: String,
    #[serde(with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub dtmf: DtmfDigit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfDigit {
    /// Always `inbound_track` (with the suffix, unlike `media.track`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    pub digit: String,
}

/// Twilio echoing one of our marks: the audio sent before it has been played — or cleared,
/// which looks the same on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkEvent {
    pub stream_sid: String,
    #[serde(with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub name: String,
}

/// The stream stopped or the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    pub stream_sid: String,
    #[serde(with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub stop: StopMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopMeta {
    pub account_sid: String,
    pub call_sid: String,
}

/// Every field any inbound event may carry, read in a single pass; the `event` name then
/// picks the variant. This is what keeps `media` parsing to one walk over the text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInbound<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    stream_sid: Option<String>,
    #[serde(default, with = "lenient_u64")]
    sequence_number: Option<u64>,
    protocol: Option<String>,
    version: Option<String>,
    start: Option<StartMeta>,
    media: Option<MediaPayload>,
    dtmf: Option<DtmfDigit>,
    mark: Option<Mark>,
    stop: Option<StopMeta>,
}

/// Just the event name, to tell an unknown event with odd fields from a malformed known one.
#[derive(Deserialize)]
struct EventName<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
}

const KNOWN_EVENTS: [&str; 6] = ["connected", "start", "media", "dtmf", "mark", "stop"];

impl<'de> Deserialize<'de> for Inbound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawInbound::deserialize(deserializer)?;
        let sequence_number = raw.sequence_number;
        Ok(match raw.event.as_ref() {
            "connected" => Inbound::Connected(Connected {
                protocol: required(raw.protocol, "protocol")?,
                version: required(raw.version, "version")?,
            }),
            "start" => {
                let start = required(raw.start, "start")?;
                // The stream SID is repeated inside `start`; accept a frame that only has that one.
                let stream_sid = raw.stream_sid.unwrap_or_else(|| start.stream_sid.clone());
                Inbound::Start(Start {
                    stream_sid,
                    sequence_number,
                    start,
                })
            }
            "media" => Inbound::Media(Media {
                stream_sid: required(raw.stream_sid, "streamSid")?,
                sequence_number,
                media: required(raw.media, "media")?,
            }),
            "dtmf" => Inbound::Dtmf(Dtmf {
                stream_sid: required(raw.stream_sid, "streamSid")?,
                sequence_number,
                dtmf: required(raw.dtmf, "dtmf")?,
            }),
            "mark" => Inbound::Mark(MarkEvent {
                stream_sid: required(raw.stream_sid, "streamSid")?,
                sequence_number,
                mark: required(raw.mark, "mark")?,
            }),
            "stop" => Inbound::Stop(Stop {
                stream_sid: required(raw.stream_sid, "streamSid")?,
                sequence_number,
                stop: required(raw.stop, "stop")?,
            }),
            _ => Inbound::Unknown,
        })
    }
}

fn required<T, E: serde::de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(field))
}

/// Parses one text frame from Twilio.
///
/// An unknown `event` is `Ok(Inbound::Unknown)` whatever its other fields look like.
pub fn parse_inbound(text: &str) -> Result<Inbound, MediaError> {
    serde_json::from_str(text).or_else(|err| {
        let error = MediaError::classify(err);
        // Only on the error path: a new event may reuse a known field name with another shape.
        match (&error, serde_json::from_str::<EventName<'_>>(text)) {
            (MediaError::Malformed(_), Ok(name))
                if !KNOWN_EVENTS.contains(&name.event.as_ref()) =>
            {
                Ok(Inbound::Unknown)
            }
            _ => Err(error),
        }
    })
}

/// A `media` frame borrowed from the text: the per-frame event, read without allocating
/// (base64 and stream SIDs need no JSON escapes, so these are slices of the frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef<'a> {
    pub stream_sid: Cow<'a, str>,
    pub track: Option<Cow<'a, str>>,
    pub payload: Cow<'a, str>,
}

/// [`RawInbound`] with the fields of a `media` frame borrowed: it reads (and so checks) every
/// field the full parse does, so it takes exactly the frames that parse as [`Inbound::Media`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMedia<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(default, with = "lenient_u64")]
    #[allow(dead_code)]
    sequence_number: Option<u64>,
    #[allow(dead_code)]
    protocol: Option<String>,
    #[allow(dead_code)]
    version: Option<String>,
    #[allow(dead_code)]
    start: Option<StartMeta>,
    #[serde(borrow)]
    media: Option<RawMediaPayload<'a>>,
    #[allow(dead_code)]
    dtmf: Option<DtmfDigit>,
    #[allow(dead_code)]
    mark: Option<Mark>,
    #[allow(dead_code)]
    stop: Option<StopMeta>,
}

/// [`MediaPayload`], borrowed.
#[derive(Deserialize)]
struct RawMediaPayload<'a> {
    #[serde(default, borrow)]
    track: Option<Cow<'a, str>>,
    #[serde(default, with = "lenient_u64")]
    #[allow(dead_code)]
    chunk: Option<u64>,
    #[serde(default, with = "lenient_u64")]
    #[allow(dead_code)]
    timestamp: Option<u64>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

/// The fast path of [`parse_inbound`] for `media` frames: `Some` exactly when it would
/// return [`Inbound::Media`] (with the same fields); `None` for anything else, which
/// [`parse_inbound`] then reads (and words the error of).
pub fn parse_media(text: &str) -> Option<MediaRef<'_>> {
    if !text.contains("\"media\"") {
        return None;
    }
    let raw: RawMedia<'_> = serde_json::from_str(text).ok()?;
    if raw.event != "media" {
        return None;
    }
    let media = raw.media?;
    Some(MediaRef {
        stream_sid: raw.stream_sid?,
        track: media.track,
        payload: media.payload,
    })
}

/// A frame the server sends to Twilio. The server builds these with [`media_message`],
/// [`mark_message`] and [`clear_message`]; this type lets a fake Twilio read them back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum Outbound {
    Media {
        stream_sid: String,
        media: OutboundMedia,
    },
    Mark {
        stream_sid: String,
        mark: Mark,
    },
    Clear {
        stream_sid: String,
    },
}

/// Outbound media has only `payload`: no track, chunk or timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OutboundMedia {
    pub payload: String,
}

impl Outbound {
    /// The exact JSON text frame for this message.
    pub fn to_json(&self) -> String {
        encode(&self.as_frame())
    }

    fn as_frame(&self) -> OutboundFrame<'_> {
        match self {
            Outbound::Media { stream_sid, media } => OutboundFrame::Media {
                stream_sid,
                media: PayloadRef {
                    payload: &media.payload,
                },
            },
            Outbound::Mark { stream_sid, mark } => OutboundFrame::Mark {
                stream_sid,
                mark: NameRef { name: &mark.name },
            },
            Outbound::Clear { stream_sid } => OutboundFrame::Clear { stream_sid },
        }
    }
}

impl Serialize for Outbound {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_frame().serialize(serializer)
    }
}

/// The one definition of the outbound wire shape, borrowing so the hot path never copies audio.
#[derive(Serialize)]
#[serde(
    tag = "event",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
enum OutboundFrame<'a> {
    Media {
        stream_sid: &'a str,
        media: PayloadRef<'a>,
    },
    Mark {
        stream_sid: &'a str,
        mark: NameRef<'a>,
    },
    Clear {
        stream_sid: &'a str,
    },
}

#[derive(Serialize)]
struct PayloadRef<'a> {
    payload: &'a str,
}

#[derive(Serialize)]
struct NameRef<'a> {
    name: &'a str,
}

/// serde_json only fails on non-string map keys or a failing custom `Serialize`; outbound
/// frames have neither, so the empty fallback is unreachable.
fn encode(frame: &OutboundFrame<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// `{"event":"media","streamSid":…,"media":{"payload":…}}`: audio for Twilio to play.
pub fn media_message(stream_sid: &str, payload_b64: &str) -> String {
    encode(&OutboundFrame::Media {
        stream_sid,
        media: PayloadRef {
            payload: payload_b64,
        },
    })
}

/// `{"event":"mark",…}`: Twilio echoes it once the audio sent before it has played.
pub fn mark_message(stream_sid: &str, name: &str) -> String {
    encode(&OutboundFrame::Mark {
        stream_sid,
        mark: NameRef { name },
    })
}

/// `{"event":"clear",…}`: drop all buffered audio (barge-in); pending marks are echoed at once.
pub fn clear_message(stream_sid: &str) -> String {
    encode(&OutboundFrame::Clear { stream_sid })
}

/// Parses a frame the server sent (for a fake Twilio or the load generator).
pub fn parse_outbound(text: &str) -> Result<Outbound, MediaError> {
    serde_json::from_str(text).map_err(MediaError::classify)
}

/// Twilio's counters: documented as strings (`"5"`), accepted as numbers too, written as strings.
mod lenient_u64 {
    use std::fmt;

    use serde::de::{self, Unexpected, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(n) => serializer.collect_str(n),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(LenientU64)
    }

    struct LenientU64;

    impl<'de> Visitor<'de> for LenientU64 {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned integer or a string of digits")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v.parse() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
                _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const SID: &str = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";

    /// The §1.3 samples of twilio-protocols.md, verbatim.
    const CONNECTED: &str = r#"{ "event": "connected", "protocol": "Call", "version": "1.0.0" }"#;
    const START: &str = r#"{
      "event": "start",
      "sequenceNumber": "1",
      "start": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "tracks": [ "inbound" ],
        "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
        "customParameters": { "FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob" }
      },
      "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    }"#;
    const MEDIA: &str = r#"{
      "event": "media",
      "sequenceNumber": "4",
      "media": { "track": "inbound", "chunk": "2", "timestamp": "5", "payload": "no+JhoaJjpzS..." },
      "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    }"#;
    const DTMF: &str = r#"{ "event": "dtmf", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "sequenceNumber": "5",
      "dtmf": { "track": "inbound_track", "digit": "1" } }"#;
    const MARK: &str = r#"{ "event": "mark", "sequenceNumber": "4", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
      "mark": { "name": "my label" } }"#;
    const STOP: &str = r#"{ "event": "stop", "sequenceNumber": "5",
      "stop": { "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" },
      "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" }"#;

    /// The §1.4 samples (server → Twilio), verbatim.
    const OUT_MEDIA: &str = r#"{ "event": "media", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "media": { "payload": "a3242sa..." } }"#;
    const OUT_MARK: &str = r#"{ "event": "mark", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "mark": { "name": "my label" } }"#;
    const OUT_CLEAR: &str =
        r#"{ "event": "clear", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" }"#;

    fn round_trip(frame: &Inbound) -> Inbound {
        let text = serde_json::to_string(frame).unwrap();
        parse_inbound(&text).unwrap()
    }

    #[test]
    fn every_documented_inbound_sample_parses_and_round_trips() {
        for sample in [CONNECTED, START, MEDIA, DTMF, MARK, STOP] {
            let frame = parse_inbound(sample).unwrap();
            assert_ne!(frame, Inbound::Unknown, "{sample}");
            assert_eq!(round_trip(&frame), frame, "{sample}");
        }
    }

    #[test]
    fn samples_parse_to_the_documented_values() {
        assert_eq!(
            parse_inbound(CONNECTED).unwrap(),
            Inbound::Connected(Connected {
                protocol: "Call".into(),
                version: "1.0.0".into()
            })
        );

        let Inbound::Start(start) = parse_inbound(START).unwrap() else {
            panic!("not start")
        };
        assert_eq!(start.stream_sid, SID);
        assert_eq!(start.sequence_number, Some(1));
        assert_eq!(start.start.call_sid, "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
        assert_eq!(start.start.tracks, ["inbound"]);
        assert_eq!(start.start.custom_parameters["RemoteParty"], "Bob");
        assert_eq!(
            start.start.media_format,
            MediaFormat {
                encoding: "audio/x-mulaw".into(),
                sample_rate: 8000,
                channels: 1
            }
        );

        assert_eq!(
            parse_inbound(MEDIA).unwrap(),
            Inbound::Media(Media {
                stream_sid: SID.into(),
                sequence_number: Some(4),
                media: MediaPayload {
                    track: Some("inbound".into()),
                    chunk: Some(2),
                    timestamp: Some(5),
                    payload: "no+JhoaJjpzS...".into(),
                },
            })
        );

        let Inbound::Dtmf(dtmf) = parse_inbound(DTMF).unwrap() else {
            panic!("not dtmf")
        };
        assert_eq!(
            dtmf.dtmf,
            DtmfDigit {
                track: Some("inbound_track".into()),
                digit: "1".into()
            }
        );

        let Inbound::Mark(mark) = parse_inbound(MARK).unwrap() else {
            panic!("not mark")
        };
        assert_eq!(
            (mark.sequence_number, mark.mark.name.as_str()),
            (Some(4), "my label")
        );

        let Inbound::Stop(stop) = parse_inbound(STOP).unwrap() else {
            panic!("not stop")
        };
        assert_eq!(stop.stop.call_sid, "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
    }

    #[test]
    fn counters_are_accepted_as_numbers_and_written_as_strings() {
        let numeric = json!({
            "event": "media", "sequenceNumber": 4, "streamSid": SID,
            "media": { "track": "inbound", "chunk": 2, "timestamp": 5, "payload": "AAAA" }
        });
        let frame = parse_inbound(&numeric.to_string()).unwrap();
        let Inbound::Media(media) = &frame else {
            panic!("not media")
        };
        assert_eq!(
            (
                media.sequence_number,
                media.media.chunk,
                media.media.timestamp
            ),
            (Some(4), Some(2), Some(5))
        );

        let written: serde_json::Value = serde_json::to_value(&frame).unwrap();
        assert_eq!(written["sequenceNumber"], "4");
        assert_eq!(written["media"]["chunk"], "2");
        assert_eq!(written["media"]["timestamp"], "5");
    }

    #[test]
    fn optional_counters_and_track_may_be_absent_or_null() {
        let text = r#"{"event":"media","streamSid":"MZ1","sequenceNumber":null,"media":{"payload":"AA=="}}"#;
        let frame = parse_inbound(text).unwrap();
        let Inbound::Media(media) = &frame else {
            panic!("not media")
        };
        assert_eq!(media.sequence_number, None);
        assert_eq!(
            media.media,
            MediaPayload {
                track: None,
                chunk: None,
                timestamp: None,
                payload: "AA==".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&frame).unwrap(),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AA=="}}"#
        );
    }

    #[test]
    fn start_may_carry_its_stream_sid_only_inside_start() {
        let mut value: serde_json::Value = serde_json::from_str(START).unwrap();
        value.as_object_mut().unwrap().remove("streamSid");
        let Inbound::Start(start) = parse_inbound(&value.to_string()).unwrap() else {
            panic!("not start")
        };
        assert_eq!(start.stream_sid, SID);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = r#"{"event":"mark","streamSid":"MZ1","future":{"x":[1,2]},"mark":{"name":"m","extra":true}}"#;
        assert!(matches!(parse_inbound(text).unwrap(), Inbound::Mark(m) if m.mark.name == "m"));
    }

    #[test]
    fn unknown_events_are_unknown_even_with_odd_fields() {
        assert_eq!(
            parse_inbound(r#"{"event":"transcript","text":"hi"}"#).unwrap(),
            Inbound::Unknown
        );
        assert_eq!(
            parse_inbound(r#"{"event":"future","media":42,"mark":"x"}"#).unwrap(),
            Inbound::Unknown
        );
        assert_eq!(round_trip(&Inbound::Unknown), Inbound::Unknown);
    }

    #[test]
    fn malformed_known_events_are_errors() {
        for text in [
            r#"{"event":"media","streamSid":"MZ1"}"#,
            r#"{"event":"media","media":{"payload":"AA=="}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":7}}"#,
            r#"{"event":"media","streamSid":"MZ1","sequenceNumber":"x1","media":{"payload":"A"}}"#,
            r#"{"event":"media","streamSid":"MZ1","sequenceNumber":-1,"media":{"payload":"A"}}"#,
            r#"{"event":"media","streamSid":"MZ1","sequenceNumber":"+1","media":{"payload":"A"}}"#,
            r#"{"event":"start","streamSid":"MZ1","start":{"callSid":"CA1"}}"#,
            r#"{"event":"connected","protocol":"Call"}"#,
            r#"{"streamSid":"MZ1"}"#,
            r#"[1,2]"#,
            r#""media""#,
        ] {
            let err = parse_inbound(text).unwrap_err();
            assert_eq!(err.reason(), "malformed", "{text}: {err}");
        }
    }

    #[test]
    fn non_json_is_not_json() {
        for text in [
            "",
            "garbage",
            "{",
            r#"{"event":"media""#,
            r#"{"event":"connected","protocol":"Call","version":"1"} x"#,
            "\u{0}",
        ] {
            let err = parse_inbound(text).unwrap_err();
            assert_eq!(err.reason(), "not_json", "{text:?}: {err}");
        }
    }

    #[test]
    fn outbound_messages_are_exactly_the_documented_frames() {
        assert_eq!(
            media_message(SID, "a3242sa..."),
            r#"{"event":"media","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","media":{"payload":"a3242sa..."}}"#
        );
        assert_eq!(
            mark_message(SID, "my label"),
            r#"{"event":"mark","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","mark":{"name":"my label"}}"#
        );
        assert_eq!(
            clear_message(SID),
            r#"{"event":"clear","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}"#
        );

        for (ours, documented) in [
            (media_message(SID, "a3242sa..."), OUT_MEDIA),
            (mark_message(SID, "my label"), OUT_MARK),
            (clear_message(SID), OUT_CLEAR),
        ] {
            let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
            let documented: serde_json::Value = serde_json::from_str(documented).unwrap();
            assert_eq!(ours, documented);
        }
    }

    #[test]
    fn outbound_samples_parse_and_round_trip() {
        let media = parse_outbound(OUT_MEDIA).unwrap();
        assert_eq!(
            media,
            Outbound::Media {
                stream_sid: SID.into(),
                media: OutboundMedia {
                    payload: "a3242sa...".into()
                }
            }
        );
        assert_eq!(
            parse_outbound(OUT_MARK).unwrap(),
            Outbound::Mark {
                stream_sid: SID.into(),
                mark: Mark {
                    name: "my label".into()
                }
            }
        );
        assert_eq!(
            parse_outbound(OUT_CLEAR).unwrap(),
            Outbound::Clear {
                stream_sid: SID.into()
            }
        );
        for sample in [OUT_MEDIA, OUT_MARK, OUT_CLEAR] {
            let frame = parse_outbound(sample).unwrap();
            assert_eq!(parse_outbound(&frame.to_json()).unwrap(), frame);
            assert_eq!(serde_json::to_string(&frame).unwrap(), frame.to_json());
        }
        assert_eq!(parse_outbound("nope").unwrap_err().reason(), "not_json");
        assert_eq!(
            parse_outbound(r#"{"event":"play"}"#).unwrap_err().reason(),
            "malformed"
        );
    }

    #[test]
    fn outbound_text_is_escaped() {
        let text = mark_message(SID, "quote\" back\\slash\nline");
        let Outbound::Mark { mark, .. } = parse_outbound(&text).unwrap() else {
            panic!("not mark")
        };
        assert_eq!(mark.name, "quote\" back\\slash\nline");
    }

    /// `parse_media` takes exactly the frames `parse_inbound` reads as `media`, with the same
    /// fields.
    fn media_fast_path_agrees(text: &str) {
        match (parse_media(text), parse_inbound(text)) {
            (Some(fast), Ok(Inbound::Media(full))) => {
                assert_eq!(fast.stream_sid, full.stream_sid, "{text}");
                assert_eq!(fast.track.as_deref(), full.media.track.as_deref(), "{text}");
                assert_eq!(fast.payload, full.media.payload, "{text}");
            }
            (None, Ok(Inbound::Media(_))) => panic!("fast path missed {text}"),
            (Some(_), other) => panic!("fast path took {text}; full parse: {other:?}"),
            (None, _) => {}
        }
    }

    #[test]
    fn the_media_fast_path_reads_generated_frames() {
        let frame = Inbound::Media(Media {
            stream_sid: SID.into(),
            sequence_number: Some(3),
            media: MediaPayload {
                track: Some("inbound".into()),
                chunk: Some(2),
                timestamp: Some(20),
                payload: "AAEC/w==".into(),
            },
        });
        let text = serde_json::to_string(&frame).unwrap();
        media_fast_path_agrees(&text);
        assert!(parse_media(&text).is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            let _ = parse_inbound(&text);
            let _ = parse_outbound(&text);
            media_fast_path_agrees(&text);
        }

        #[test]
        fn arbitrary_json_shaped_text_never_panics(
            event in prop::sample::select(vec!["media", "start", "mark", "stop", "dtmf", "connected", "x"]),
            body in r#"[{}\[\]":,0-9a-zA-Z ]{0,40}"#,
        ) {
            let text = format!(r#"{{"event":"{event}",{body}}}"#);
            let _ = parse_inbound(&text);
            media_fast_path_agrees(&text);
        }

        #[test]
        fn the_media_fast_path_agrees_on_media_shaped_frames(
            sid in prop::sample::select(vec![r#""streamSid":"MZ1","#, r#""streamSid":1,"#, ""]),
            extra in prop::sample::select(vec![
                "", r#""sequenceNumber":"7","#, r#""sequenceNumber":"x","#,
                r#""mark":{"name":"m"},"#, r#""mark":3,"#, r#""start":{},"#,
            ]),
            track in prop::sample::select(vec!["", r#""track":"inbound","#, r#""track":null,"#, r#""track":5,"#]),
            counters in prop::sample::select(vec!["", r#""chunk":"2","timestamp":40,"#, r#""chunk":"two","#]),
            payload in prop::sample::select(vec![r#""payload":"AAEC/w==""#, r#""payload":"a\u0041""#, r#""payload":7"#, r#""x":1"#]),
        ) {
            let text = format!(
                r#"{{"event":"media",{sid}{extra}"media":{{{track}{counters}{payload}}}}}"#
            );
            media_fast_path_agrees(&text);
        }

        #[test]
        fn media_frames_round_trip(
            stream_sid in ".*",
            payload in ".*",
            track in proptest::option::of(".*"),
            seq in proptest::option::of(any::<u64>()),
            chunk in proptest::option::of(any::<u64>()),
            timestamp in proptest::option::of(any::<u64>()),
        ) {
            let frame = Inbound::Media(Media {
                stream_sid: stream_sid.clone(),
                sequence_number: seq,
                media: MediaPayload { track, chunk, timestamp, payload: payload.clone() },
            });
            prop_assert_eq!(round_trip(&frame), frame);
            let outbound = parse_outbound(&media_message(&stream_sid, &payload)).unwrap();
            prop_assert_eq!(outbound, Outbound::Media { stream_sid, media: OutboundMedia { payload } });
        }
    }
}
