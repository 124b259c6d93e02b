//! A one-way Media Stream, as Twilio forks one for `<Start><Stream track="both_tracks">`
//! (protocols-more.md §6): the call goes on with the next verb (a `<Dial>`, say) while both
//! tracks — `inbound`, the caller, and `outbound`, what Twilio plays them (the dialled
//! person) — flow to the socket, interleaved, 20 ms frames each. The server may send
//! nothing back; whatever it does send is kept for the test to see.

use std::collections::BTreeMap;
use std::time::Duration;

use awc::ws::{Frame, Message};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};

use super::line::ACCOUNT_SID;
use super::twiml::{parse_document, TwimlError};
use super::SimError;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;
/// 20 ms of μ-law.
const FRAME_BYTES: usize = 160;
const FRAME: Duration = Duration::from_millis(20);
/// μ-law silence.
const SILENCE: u8 = 0xFF;
/// How long to wait for the server's answer to our close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Which track a frame belongs to (`media.track`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkTrack {
    /// The caller.
    Inbound,
    /// What Twilio plays the caller: the dialled person.
    Outbound,
}

impl ForkTrack {
    fn name(self) -> &'static str {
        match self {
            ForkTrack::Inbound => "inbound",
            ForkTrack::Outbound => "outbound",
        }
    }
}

/// The socket as used here (awc's client `Framed`).
trait Socket:
    futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<Message, Error = awc::error::WsProtocolError>
    + Unpin
{
}

impl<T> Socket for T where
    T: futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<Message, Error = awc::error::WsProtocolError>
        + Unpin
{
}

/// An open one-way stream.
pub struct OneWayStream {
    socket: Box<dyn Socket>,
    stream_sid: String,
    call_sid: String,
    sequence: u64,
    chunk: u64,
    /// The `<Parameter>`s sent in `start.customParameters`.
    pub custom_parameters: BTreeMap<String, String>,
}

impl OneWayStream {
    /// Reads `<Start><Stream>` from `twiml` and opens it for `call_sid` (the upgrade signed
    /// over the stream URL when `auth_token` is given): `connected`, then `start` with both
    /// tracks.
    pub async fn open(
        twiml: &str,
        auth_token: Option<&str>,
        call_sid: &str,
    ) -> Result<OneWayStream, SimError> {
        let doc = parse_document(twiml)?;
        let stream = doc
            .started("Stream")
            .first()
            .copied()
            .cloned()
            .ok_or(TwimlError::NoStream)?;
        let url = stream.attr("url").ok_or(TwimlError::NoUrl)?.to_owned();
        let custom_parameters: BTreeMap<String, String> = stream
            .children
            .iter()
            .filter(|child| child.name == "Parameter")
            .filter_map(|p| Some((p.attr("name")?.to_owned(), p.attr("value")?.to_owned())))
            .collect();
        let mut upgrade = awc::Client::default().ws(url.as_str());
        if let Some(token) = auth_token {
            let signature = actors::protocol::twilio::signature::compute(token, &url, &[]);
            upgrade = upgrade.set_header("X-Twilio-Signature", signature);
        }
        let (_, socket) = upgrade.connect().await.map_err(|e| SimError::Connect {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let tracks = match stream.attr("track").unwrap_or("inbound_track") {
            "both_tracks" => vec!["inbound", "outbound"],
            "outbound_track" => vec!["outbound"],
            _ => vec!["inbound"],
        };
        let stream_sid = format!("MZ{}", call_sid.trim_start_matches("CA"));
        let mut fork = OneWayStream {
            socket: Box::new(socket),
            stream_sid,
            call_sid: call_sid.to_owned(),
            sequence: 0,
            chunk: 0,
            custom_parameters,
        };
        fork.send(
            serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        )
        .await?;
        let start = serde_json::json!({
            "event": "start",
            "sequenceNumber": fork.next_sequence().to_string(),
            "streamSid": fork.stream_sid,
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": fork.stream_sid,
                "callSid": fork.call_sid,
                "tracks": tracks,
                "customParameters": fork.custom_parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        });
        fork.send(start).await?;
        Ok(fork)
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    async fn send(&mut self, frame: serde_json::Value) -> Result<(), SimError> {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .map_err(|e| SimError::Socket(e.to_string()))
    }

    /// One 20 ms slot: a frame of each track, `audio` on `track` and silence on the other.
    async fn slot(&mut self, track: ForkTrack, audio: &[u8]) -> Result<(), SimError> {
        self.chunk += 1;
        let timestamp = self.chunk.saturating_sub(1) * 20;
        for each in [ForkTrack::Inbound, ForkTrack::Outbound] {
            let mut frame = [SILENCE; FRAME_BYTES];
            if each == track {
                let (head, _) = frame.split_at_mut(audio.len().min(FRAME_BYTES));
                head.copy_from_slice(audio.get(..head.len()).unwrap_or_default());
            }
            let sequence = self.next_sequence();
            let media = serde_json::json!({
                "event": "media",
                "sequenceNumber": sequence.to_string(),
                "streamSid": self.stream_sid,
                "media": {
                    "track": each.name(),
                    "chunk": self.chunk.to_string(),
                    "timestamp": timestamp.to_string(),
                    "payload": B64.encode(frame),
                },
            });
            self.send(media).await?;
        }
        Ok(())
    }

    /// `ulaw` said on `track` (the other track silent), paced at real time.
    pub async fn speak(&mut self, track: ForkTrack, ulaw: &[u8]) -> Result<(), SimError> {
        let mut ticks = tokio::time::interval(FRAME);
        for chunk in ulaw.chunks(FRAME_BYTES) {
            ticks.tick().await;
            self.slot(track, chunk).await?;
        }
        Ok(())
    }

    /// Sends a text frame as it is (bad input for tests).
    pub async fn send_raw(&mut self, text: &str) -> Result<(), SimError> {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .map_err(|e| SimError::Socket(e.to_string()))
    }

    /// The stream's `streamSid`.
    pub fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    /// `ms` of silence on both tracks, paced at real time.
    pub async fn silence(&mut self, ms: u64) -> Result<(), SimError> {
        let mut ticks = tokio::time::interval(FRAME);
        for _ in 0..ms / 20 {
            ticks.tick().await;
            self.slot(ForkTrack::Inbound, &[]).await?;
        }
        Ok(())
    }

    /// The call ended: `stop`, then close. Returns the text frames the server sent on the
    /// stream (Twilio takes none on a one-way stream).
    pub async fn stop(mut self) -> Result<Vec<String>, SimError> {
        let stop = serde_json::json!({
            "event": "stop",
            "sequenceNumber": self.next_sequence().to_string(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid},
        });
        self.send(stop).await?;
        let _ = self
            .socket
            .send(Message::Close(Some(awc::ws::CloseCode::Normal.into())))
            .await;
        let mut received = Vec::new();
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, self.socket.next()).await {
            match frame {
                Ok(Frame::Text(text)) => received.push(String::from_utf8_lossy(&text).into_owned()),
                Ok(Frame::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok(received)
    }
}
