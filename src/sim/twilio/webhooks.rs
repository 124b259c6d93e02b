//! The callbacks Twilio makes around a call, as it makes them: form POSTs to the URLs the
//! TwiML named, signed with `X-Twilio-Signature` over that URL when an auth token is given —
//! a `<Gather>`'s `action` (keys pressed, or none), Real-Time Transcription events
//! (protocols-more.md §5.3–5.4) and recording status callbacks (§4.3).

use std::time::Duration;

use super::line::ACCOUNT_SID;
use super::SimError;

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Posts Twilio's callbacks for one account.
#[derive(Clone, Debug, Default)]
pub struct TwilioWebhooks {
    /// Signs every request when set.
    pub auth_token: Option<String>,
}

impl TwilioWebhooks {
    pub fn new(auth_token: Option<&str>) -> Self {
        TwilioWebhooks {
            auth_token: auth_token.map(str::to_owned),
        }
    }

    /// POSTs `params` to `url` (signed); the status and the body of the answer.
    pub async fn post(
        &self,
        url: &str,
        params: &[(&str, &str)],
    ) -> Result<(u16, String), SimError> {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let client = awc::Client::builder().timeout(HTTP_TIMEOUT).finish();
        let mut request = client.post(url);
        if let Some(token) = &self.auth_token {
            let signature = actors::protocol::twilio::signature::compute(token, url, &owned);
            request = request.insert_header((SIGNATURE_HEADER, signature));
        }
        let failed = |reason: String| SimError::Webhook {
            url: url.to_owned(),
            reason,
        };
        let mut response = request
            .send_form(&owned)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let body = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok((
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }

    /// The caller pressed `digits` (or nothing: `None`) at a `<Gather>`: Twilio requests its
    /// `action` with the standard voice parameters plus `Digits`.
    pub async fn gather(
        &self,
        action: &str,
        call_sid: &str,
        from: &str,
        to: &str,
        digits: Option<&str>,
    ) -> Result<(u16, String), SimError> {
        let mut params = vec![
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", call_sid),
            ("From", from),
            ("To", to),
            ("CallStatus", "in-progress"),
            ("Direction", "inbound"),
            ("ApiVersion", "2010-04-01"),
        ];
        if let Some(digits) = digits {
            params.push(("Digits", digits));
        }
        self.post(action, &params).await
    }

    /// A Real-Time Transcription event to the `<Transcription statusCallbackUrl>`:
    /// `transcription-started`, `-content` (final text on `track`), `-stopped`.
    pub async fn transcription(
        &self,
        url: &str,
        call_sid: &str,
        sequence_id: u64,
        event: TranscriptionEvent<'_>,
    ) -> Result<(u16, String), SimError> {
        let sequence = sequence_id.to_string();
        let mut params = vec![
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("CallSid", call_sid.to_owned()),
            (
                "TranscriptionSid",
                "GT00000000000000000000000000000001".to_owned(),
            ),
            ("Timestamp", "2026-12-05T12:00:00.000000Z".to_owned()),
            ("SequenceId", sequence),
        ];
        match event {
            TranscriptionEvent::Started => {
                params.push(("TranscriptionEvent", "transcription-started".into()));
                params.push(("Track", "both_tracks".into()));
                params.push(("LanguageCode", "en-US".into()));
                params.push(("TranscriptionEngine", "google".into()));
                params.push(("PartialResults", "false".into()));
            }
            TranscriptionEvent::Content { track, text } => {
                params.push(("TranscriptionEvent", "transcription-content".into()));
                params.push(("Track", track.to_owned()));
                params.push(("LanguageCode", "en-US".into()));
                params.push(("Final", "true".into()));
                params.push((
                    "TranscriptionData",
                    serde_json::json!({"transcript": text, "confidence": 0.95}).to_string(),
                ));
            }
            TranscriptionEvent::Stopped => {
                params.push(("TranscriptionEvent", "transcription-stopped".into()));
            }
        }
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(url, &borrowed).await
    }

    /// A recording status callback to the `<Recording recordingStatusCallback>`.
    pub async fn recording(
        &self,
        url: &str,
        call_sid: &str,
        recording_sid: &str,
        status: &str,
        duration_secs: Option<u64>,
    ) -> Result<(u16, String), SimError> {
        let media = format!(
            "https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}"
        );
        let duration = duration_secs.map(|d| d.to_string());
        let mut params = vec![
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", call_sid),
            ("RecordingSid", recording_sid),
            ("RecordingUrl", media.as_str()),
            ("RecordingStatus", status),
            ("RecordingChannels", "2"),
            ("RecordingStartTime", "Sat, 05 Dec 2026 12:00:00 +0000"),
            ("RecordingSource", "StartCallRecordingTwiML"),
            ("RecordingTrack", "both"),
        ];
        if let Some(duration) = &duration {
            params.push(("RecordingDuration", duration));
        }
        self.post(url, &params).await
    }
}

/// Which Real-Time Transcription callback to send.
#[derive(Clone, Copy, Debug)]
pub enum TranscriptionEvent<'a> {
    Started,
    /// Final text heard on `track` (`inbound_track`: the caller; `outbound_track`: ours).
    Content {
        track: &'a str,
        text: &'a str,
    },
    Stopped,
}
