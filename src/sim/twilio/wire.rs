//! The simulated Twilio's side of the Media Streams wire (twilio-protocols.md §1.3–§1.4):
//! writing `connected`, `start`, `media`, `mark` echoes and `stop`, and reading the server's
//! `media`, `mark` and `clear`.
//!
//! The rare frames are the engine's own [`Inbound`] types serialised; the per-frame paths are
//! written and read here by hand because they allocate nothing once warmed up: frames are written into one reusable
//! buffer whose written part is split off and handed to the socket, and the buffer reclaims
//! that space when the socket has copied it; server frames are parsed borrowing from the
//! received bytes and payloads decoded into a reusable scratch vector.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use actors::protocol::twilio::media::{
    Connected, Dtmf, DtmfDigit, Inbound, Mark, MarkEvent, MediaFormat, Start, StartMeta, Stop,
    StopMeta,
};
use awc::ws::Message;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut as _, BytesMut};
use serde::Deserialize;

use super::pacer::{Stamp, FRAME_BYTES};

/// Base64 characters of one frame's audio.
const FRAME_BASE64: usize = FRAME_BYTES.div_ceil(3) * 4;

/// A text frame ready for the socket, or why it could not be built.
pub(super) type Frame = Result<Message, WireError>;

/// Why a frame could not be written. `awc` takes text frames as `ByteString`, which checks
/// UTF-8; frames are always written as JSON, so this is reported rather than assumed away.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    #[error("cannot serialise frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes the frames Twilio sends, numbering them: `sequenceNumber` starts at 1 with `start`
/// and counts every frame after it (`connected` has none).
#[derive(Debug)]
pub(super) struct Writer {
    buf: BytesMut,
    stream_sid: String,
    /// The last `sequenceNumber` used.
    seq: u64,
}

/// The `start` frame's description of the call.
pub(super) struct StartInfo<'a> {
    pub(super) account_sid: &'a str,
    pub(super) call_sid: &'a str,
    pub(super) custom_parameters: &'a BTreeMap<String, String>,
}

impl Writer {
    pub(super) fn new(stream_sid: String) -> Self {
        Self {
            buf: BytesMut::with_capacity(512),
            stream_sid,
            seq: 0,
        }
    }

    pub(super) fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Hands the written bytes to the socket, keeping the buffer for the next frame.
    fn take(&mut self) -> Frame {
        Ok(Message::Text(self.buf.split().try_into()?))
    }

    /// The rare frames go through the engine's own wire types, so their shape is the one
    /// the server parses.
    fn json(&mut self, value: &Inbound) -> Frame {
        serde_json::to_writer((&mut self.buf).writer(), value)?;
        self.take()
    }

    pub(super) fn connected(&mut self) -> Frame {
        self.json(&Inbound::Connected(Connected {
            protocol: "Call".to_owned(),
            version: "1.0.0".to_owned(),
        }))
    }

    pub(super) fn start(&mut self, info: &StartInfo<'_>) -> Frame {
        let frame = Inbound::Start(Start {
            stream_sid: self.stream_sid.clone(),
            sequence_number: Some(self.next_seq()),
            start: StartMeta {
                account_sid: info.account_sid.to_owned(),
                stream_sid: self.stream_sid.clone(),
                call_sid: info.call_sid.to_owned(),
                tracks: vec!["inbound".to_owned()],
                custom_parameters: info.custom_parameters.clone(),
                media_format: MediaFormat {
                    encoding: "audio/x-mulaw".to_owned(),
                    sample_rate: 8000,
                    channels: 1,
                },
            },
        });
        self.json(&frame)
    }

    /// The hot path: one 20 ms caller frame, written by hand (numbers as strings, as Twilio
    /// does) so that it costs no allocation.
    pub(super) fn media(&mut self, stamp: &Stamp, audio: &[u8; FRAME_BYTES]) -> Frame {
        let seq = self.next_seq();
        // Encoded in one pass into a buffer of exactly its size (`Base64Display` feeds the
        // formatter a few bytes at a time).
        let mut b64 = [0u8; FRAME_BASE64];
        let written = STANDARD.encode_slice(audio, &mut b64).unwrap_or(0);
        let payload = b64
            .get(..written)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        // Writing to a BytesMut cannot fail; `write!` only reports formatter errors.
        let _ = write!(
            self.buf,
            r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}},"streamSid":"{}"}}"#,
            stamp.chunk, stamp.timestamp_ms, self.stream_sid,
        );
        self.take()
    }

    /// Twilio's echo of a server `mark`.
    pub(super) fn mark(&mut self, name: &str) -> Frame {
        let frame = Inbound::Mark(MarkEvent {
            stream_sid: self.stream_sid.clone(),
            sequence_number: Some(self.next_seq()),
            mark: Mark {
                name: name.to_owned(),
            },
        });
        self.json(&frame)
    }

    /// A key the caller pressed (`dtmf`, twilio-protocols.md §1.3).
    pub(super) fn dtmf(&mut self, digit: &str) -> Frame {
        let frame = Inbound::Dtmf(Dtmf {
            stream_sid: self.stream_sid.clone(),
            sequence_number: Some(self.next_seq()),
            dtmf: DtmfDigit {
                track: Some("inbound_track".to_owned()),
                digit: digit.to_owned(),
            },
        });
        self.json(&frame)
    }

    pub(super) fn stop(&mut self, account_sid: &str, call_sid: &str) -> Frame {
        let frame = Inbound::Stop(Stop {
            stream_sid: self.stream_sid.clone(),
            sequence_number: Some(self.next_seq()),
            stop: StopMeta {
                account_sid: account_sid.to_owned(),
                call_sid: call_sid.to_owned(),
            },
        });
        self.json(&frame)
    }
}

/// A frame from the server, as Twilio would accept it (§1.4: exactly the documented fields).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ServerFrame<'a> {
    /// Audio to buffer; `bytes` is the decoded μ-law length.
    Media {
        bytes: usize,
    },
    Mark {
        name: Cow<'a, str>,
    },
    Clear,
}

/// Why Twilio would reject a server frame (error 31951 "Invalid Message": non-JSON, unknown
/// message type, missing or extra field, wrong Stream SID). Twilio warns and ignores it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum Invalid {
    #[error("not a JSON message of the documented shape: {0}")]
    Shape(String),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("{event} without {field}")]
    Missing {
        event: &'static str,
        field: &'static str,
    },
    #[error("{event} with an extra field {field}")]
    Extra {
        event: &'static str,
        field: &'static str,
    },
    #[error("wrong streamSid {0:?}")]
    WrongStreamSid(String),
    #[error("media payload is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

/// The three events a server may send.
#[derive(Clone, Copy)]
enum Kind {
    Media,
    Mark,
    Clear,
}

/// The union of the documented outbound fields; unknown fields are rejected by serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<Borrowed<'a>>,
    #[serde(borrow)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow)]
    mark: Option<RawMark<'a>>,
}

/// A string borrowed from the frame when it has no escapes. serde borrows a bare `Cow<str>`
/// field but deserialises `Option<Cow<str>>` as owned, one allocation per frame; the
/// newtype keeps the borrow.
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// Parses and checks a server frame for stream `stream_sid`, decoding a media payload into
/// `scratch` (cleared first, reused across frames).
pub(super) fn parse_server_frame<'a>(
    text: &'a [u8],
    stream_sid: &str,
    scratch: &mut Vec<u8>,
) -> Result<ServerFrame<'a>, Invalid> {
    let raw: RawFrame<'a> =
        serde_json::from_slice(text).map_err(|e| Invalid::Shape(e.to_string()))?;
    let (kind, event) = match &*raw.event {
        "media" => (Kind::Media, "media"),
        "mark" => (Kind::Mark, "mark"),
        "clear" => (Kind::Clear, "clear"),
        other => return Err(Invalid::UnknownEvent(other.to_owned())),
    };
    let Borrowed(sid) = raw.stream_sid.ok_or(Invalid::Missing {
        event,
        field: "streamSid",
    })?;
    if sid != stream_sid {
        return Err(Invalid::WrongStreamSid(sid.into_owned()));
    }
    let missing = |field| Invalid::Missing { event, field };
    let no_extra = |present: bool, field| match present {
        true => Err(Invalid::Extra { event, field }),
        false => Ok(()),
    };
    match kind {
        Kind::Media => {
            no_extra(raw.mark.is_some(), "mark")?;
            let media = raw.media.ok_or(missing("media"))?;
            scratch.clear();
            STANDARD.decode_vec(media.payload.as_bytes(), scratch)?;
            Ok(ServerFrame::Media {
                bytes: scratch.len(),
            })
        }
        Kind::Mark => {
            no_extra(raw.media.is_some(), "media")?;
            let mark = raw.mark.ok_or(missing("mark"))?;
            Ok(ServerFrame::Mark { name: mark.name })
        }
        Kind::Clear => {
            no_extra(raw.media.is_some(), "media")?;
            no_extra(raw.mark.is_some(), "mark")?;
            Ok(ServerFrame::Clear)
        }
    }
}

#[cfg(test)]
mod tests {
    use actors::protocol::twilio::media::{
        clear_message, mark_message, media_message, parse_inbound, Media, MediaPayload,
    };

    use super::super::script::SILENCE;
    use super::*;

    const SID: &str = "MZ0123456789abcdef0123456789abcdef";

    fn text(frame: Frame) -> String {
        match frame.unwrap() {
            Message::Text(text) => text.to_string(),
            other => panic!("not a text frame: {other:?}"),
        }
    }

    fn writer() -> Writer {
        Writer::new(SID.to_owned())
    }

    #[test]
    fn media_frames_have_the_documented_shape_and_parse_as_the_server_does() {
        let mut w = writer();
        let audio: [u8; FRAME_BYTES] = std::array::from_fn(|i| i as u8);
        let stamp = Stamp {
            chunk: 3,
            timestamp_ms: 40,
            late: false,
        };
        let json = text(w.media(&stamp, &audio));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        // Counters are JSON strings, as in every Twilio example.
        assert_eq!(value["event"], "media");
        assert_eq!(value["sequenceNumber"], "1");
        assert_eq!(value["media"]["chunk"], "3");
        assert_eq!(value["media"]["timestamp"], "40");
        assert_eq!(value["media"]["track"], "inbound");
        assert_eq!(value["streamSid"], SID);
        assert_eq!(
            parse_inbound(&json).unwrap(),
            Inbound::Media(Media {
                stream_sid: SID.to_owned(),
                sequence_number: Some(1),
                media: MediaPayload {
                    track: Some("inbound".to_owned()),
                    chunk: Some(3),
                    timestamp: Some(40),
                    payload: STANDARD.encode(audio),
                },
            })
        );
    }

    #[test]
    fn sequence_numbers_count_every_frame_from_start() {
        let mut w = writer();
        let params = BTreeMap::from([("Agent".to_owned(), "triage".to_owned())]);
        let connected = parse_inbound(&text(w.connected())).unwrap();
        assert!(matches!(connected, Inbound::Connected(c) if c.protocol == "Call"));
        let start = parse_inbound(&text(w.start(&StartInfo {
            account_sid: "AC1",
            call_sid: "CA1",
            custom_parameters: &params,
        })))
        .unwrap();
        let Inbound::Start(start) = start else {
            panic!("not a start: {start:?}")
        };
        assert_eq!(start.sequence_number, Some(1));
        assert_eq!(start.stream_sid, SID);
        assert_eq!(start.start.call_sid, "CA1");
        assert_eq!(start.start.custom_parameters, params);
        assert_eq!(start.start.media_format.encoding, "audio/x-mulaw");
        assert_eq!(start.start.media_format.sample_rate, 8000);
        let stamp = Stamp {
            chunk: 1,
            timestamp_ms: 0,
            late: false,
        };
        let media = parse_inbound(&text(w.media(&stamp, &[SILENCE; FRAME_BYTES]))).unwrap();
        assert!(matches!(media, Inbound::Media(m) if m.sequence_number == Some(2)));
        let mark = parse_inbound(&text(w.mark("a \"quoted\" name"))).unwrap();
        let Inbound::Mark(mark) = mark else {
            panic!("not a mark: {mark:?}")
        };
        assert_eq!(mark.sequence_number, Some(3));
        assert_eq!(mark.mark.name, "a \"quoted\" name");
        let stop = parse_inbound(&text(w.stop("AC1", "CA1"))).unwrap();
        assert!(
            matches!(stop, Inbound::Stop(s) if s.sequence_number == Some(4)
            && s.stop.call_sid == "CA1")
        );
    }

    #[test]
    fn accepts_what_the_server_builds() {
        let mut scratch = Vec::new();
        let payload = STANDARD.encode([1u8; 333]);
        let media = media_message(SID, &payload);
        assert_eq!(
            parse_server_frame(media.as_bytes(), SID, &mut scratch),
            Ok(ServerFrame::Media { bytes: 333 })
        );
        let mark = mark_message(SID, "item1:g0:m7");
        assert_eq!(
            parse_server_frame(mark.as_bytes(), SID, &mut scratch),
            Ok(ServerFrame::Mark {
                name: "item1:g0:m7".into()
            })
        );
        let clear = clear_message(SID);
        assert_eq!(
            parse_server_frame(clear.as_bytes(), SID, &mut scratch),
            Ok(ServerFrame::Clear)
        );
    }

    #[test]
    fn rejects_what_twilio_rejects() {
        fn parse(json: &str) -> Result<ServerFrame<'_>, Invalid> {
            parse_server_frame(json.as_bytes(), SID, &mut Vec::new())
        }
        let sid = SID;
        assert!(matches!(parse("not json"), Err(Invalid::Shape(_))));
        assert!(matches!(
            parse(&format!(
                r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"AA==","track":"outbound"}}}}"#
            )),
            Err(Invalid::Shape(_))
        ));
        assert!(matches!(
            parse(&format!(
                r#"{{"event":"clear","streamSid":"{sid}","extra":1}}"#
            )),
            Err(Invalid::Shape(_))
        ));
        assert_eq!(
            parse(&format!(r#"{{"event":"dtmf","streamSid":"{sid}"}}"#)),
            Err(Invalid::UnknownEvent("dtmf".to_owned()))
        );
        assert_eq!(
            parse(r#"{"event":"clear"}"#),
            Err(Invalid::Missing {
                event: "clear",
                field: "streamSid"
            })
        );
        assert_eq!(
            parse(r#"{"event":"clear","streamSid":"MZother"}"#),
            Err(Invalid::WrongStreamSid("MZother".to_owned()))
        );
        assert_eq!(
            parse(&format!(r#"{{"event":"mark","streamSid":"{sid}"}}"#)),
            Err(Invalid::Missing {
                event: "mark",
                field: "mark"
            })
        );
        assert_eq!(
            parse(&format!(
                r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"AA=="}},"mark":{{"name":"x"}}}}"#
            )),
            Err(Invalid::Extra {
                event: "media",
                field: "mark"
            })
        );
        assert_eq!(
            parse(&format!(
                r#"{{"event":"clear","streamSid":"{sid}","mark":{{"name":"x"}}}}"#
            )),
            Err(Invalid::Extra {
                event: "clear",
                field: "mark"
            })
        );
        assert!(matches!(
            parse(&format!(
                r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"!!"}}}}"#
            )),
            Err(Invalid::Base64(_))
        ));
    }

    #[test]
    fn escaped_mark_names_are_unescaped() {
        let mut scratch = Vec::new();
        let json = mark_message(SID, "a\"b\\c");
        assert_eq!(
            parse_server_frame(json.as_bytes(), SID, &mut scratch),
            Ok(ServerFrame::Mark {
                name: "a\"b\\c".into()
            })
        );
    }
}
