//! The call itself: dialling (webhook, TwiML, socket upgrade, `connected`/`start`) and the one
//! task per call that paces the caller's frames, reads the server's frames and answers them.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use awc::error::WsProtocolError;
use awc::ws::{CloseCode, Frame, Message};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::pacer::{Pacer, FRAME_BYTES};
use super::playback::{ulaw_duration, Playback};
use super::script::{Script, Steered, Step, Turns, SILENCE};
use super::twiml::{parse_record, parse_stream, StreamTwiml};
use super::wire::{parse_server_frame, ServerFrame, StartInfo, Writer};
use super::{CallPlan, CallReport, Event, OnWire, SimError, EVENT_LOG_CAP};
use crate::sim::onwire::{self, Tag};

/// The account every simulated call belongs to (a well-formed `AC…` SID).
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// Twilio waits 15 s for a webhook answer (error 11205).
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// TwiML over 64 kB is an error for Twilio (11750).
const TWIML_LIMIT: usize = 64 * 1024;
/// Outbound media "can be of any size"; this only bounds a runaway server.
const MAX_FRAME: usize = 1024 * 1024;
/// How long to wait for the server's answer to our close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// μ-law silence frame.
const SILENT_FRAME: [u8; FRAME_BYTES] = [SILENCE; FRAME_BYTES];

/// The Media Streams socket as the loop uses it (awc's client `Framed`, or anything alike).
trait Socket:
    Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}

impl<T> Socket for T where
    T: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin
{
}

/// Plays the whole call described by `plan` and reports on it.
///
/// `Err` means the call never got going (webhook, TwiML or upgrade failed); trouble after the
/// stream started ends the call early and is reported in [`CallReport::error`].
pub async fn run_call(plan: CallPlan) -> Result<CallReport, SimError> {
    let mut line = dial(
        &plan.target,
        plan.auth_token.as_deref(),
        &plan.call_sid,
        &plan.from,
        &plan.to,
        None,
    )
    .await?;
    line.on_wire = plan.on_wire;
    let script = Script::new(
        plan.utterances,
        plan.barge_in,
        Duration::from_millis(plan.hangup_after_ms),
    );
    Ok(line.run(Caller::Script(script), None).await)
}

/// A call steered step by step by a test: the same loop as [`run_call`], with the caller's
/// speech queued by [`LiveCall::say`] and the server's frames observed with
/// [`LiveCall::wait_for`]. Silence flows every 20 ms from [`LiveCall::dial`] on, like a real
/// line. Dropping it hangs up.
pub struct LiveCall {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Events received while waiting for another one, kept for later `wait_for`s.
    skipped: VecDeque<Event>,
    report: Rc<RefCell<CallReport>>,
    custom_parameters: BTreeMap<String, String>,
    task: JoinHandle<CallReport>,
}

/// What the test asks of a [`LiveCall`]'s task.
enum Command {
    Say(Arc<[u8]>),
    Press(String),
    HangUp,
}

impl LiveCall {
    /// Places the call (webhook, TwiML, socket, `connected`/`start`) and starts its task on
    /// the current `LocalSet` (an actix system provides one).
    pub async fn dial(
        target: &str,
        auth_token: Option<&str>,
        call_sid: &str,
        from: &str,
        to: &str,
    ) -> Result<LiveCall, SimError> {
        let (event_tx, events) = mpsc::unbounded_channel();
        let line = dial(target, auth_token, call_sid, from, to, Some(event_tx)).await?;
        Ok(LiveCall::run(line, events))
    }

    /// Follows TwiML the server answered some other request with (a `<Connect action>` or
    /// `<Dial action>` URL, say), as Twilio does: opens its `<Connect><Stream>` for the same
    /// call.
    pub async fn follow(
        twiml: &str,
        auth_token: Option<&str>,
        call_sid: &str,
    ) -> Result<LiveCall, SimError> {
        let stream = parse_stream(twiml)?;
        let (event_tx, events) = mpsc::unbounded_channel();
        let client = twilio_client();
        let line = open(
            &client,
            twiml.to_owned(),
            stream,
            auth_token,
            call_sid,
            Some(event_tx),
        )
        .await?;
        Ok(LiveCall::run(line, events))
    }

    /// Answers a call the server placed with the Calls API, as Twilio does once the callee
    /// picks up: fetches the call's `Url` with the `outbound-api` request (signed over that
    /// exact URL), then opens its `<Connect><Stream>`. `from` is the server's number, `to`
    /// the callee.
    pub async fn answer(
        url: &str,
        auth_token: Option<&str>,
        call_sid: &str,
        from: &str,
        to: &str,
    ) -> Result<LiveCall, SimError> {
        let client = twilio_client();
        let form = outbound_form(call_sid, from, to);
        let (twiml, stream) = fetch_stream_twiml(&client, url, auth_token, &form).await?;
        let (event_tx, events) = mpsc::unbounded_channel();
        let line = open(&client, twiml, stream, auth_token, call_sid, Some(event_tx)).await?;
        Ok(LiveCall::run(line, events))
    }

    /// A handle that ends the stream from elsewhere, as Twilio does when the call's TwiML is
    /// replaced through the REST API (`stop`, then close).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.commands.clone())
    }

    fn run(line: Line<impl Socket + 'static>, events: mpsc::UnboundedReceiver<Event>) -> LiveCall {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let report = Rc::clone(&line.report);
        let custom_parameters = report.borrow().custom_parameters.clone();
        let task = tokio::task::spawn_local(
            line.run(Caller::Steered(Steered::default()), Some(command_rx)),
        );
        LiveCall {
            commands,
            events,
            skipped: VecDeque::new(),
            report,
            custom_parameters,
            task,
        }
    }

    /// The `start.customParameters` sent (the TwiML's `<Parameter>`s).
    pub fn custom_parameters(&self) -> &BTreeMap<String, String> {
        &self.custom_parameters
    }

    /// Queues speech into the paced stream, after anything queued before; silence resumes
    /// when it has all been sent. Does nothing once the call has ended.
    pub async fn say(&mut self, ulaw: &[u8]) {
        // A closed channel means the call is over; there is nobody left to hear it.
        let _ = self.commands.send(Command::Say(Arc::from(ulaw)));
    }

    /// The caller presses a key: a `dtmf` frame goes out at once.
    pub async fn press(&mut self, digit: &str) {
        let _ = self.commands.send(Command::Press(digit.to_owned()));
    }

    /// The next server-side event matching `pred`, waiting up to `timeout`. Events that do
    /// not match are kept, in order, for later calls: none is lost.
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&Event) -> bool,
        timeout: Duration,
    ) -> Result<Event, SimError> {
        if let Some(event) = self
            .skipped
            .iter()
            .position(&pred)
            .and_then(|i| self.skipped.remove(i))
        {
            return Ok(event);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match timeout_at(deadline, self.events.recv()).await {
                Err(_) => return Err(SimError::Timeout(timeout)),
                Ok(None) => return Err(SimError::Ended),
                Ok(Some(event)) if pred(&event) => return Ok(event),
                Ok(Some(event)) => self.skipped.push_back(event),
            }
        }
    }

    /// Forgets every event received so far, so the next `wait_for` sees only what comes
    /// after this moment. Returns them, oldest first.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut drained: Vec<Event> = self.skipped.drain(..).collect();
        while let Ok(event) = self.events.try_recv() {
            drained.push(event);
        }
        drained
    }

    /// The counters so far.
    pub fn snapshot(&self) -> CallReport {
        self.report.borrow().clone()
    }

    /// Sends `stop`, closes with 1000 and returns the final report.
    pub async fn hang_up(self) -> Result<CallReport, SimError> {
        // If the task already ended (the server closed), the report is final anyway.
        let _ = self.commands.send(Command::HangUp);
        self.task.await.map_err(|e| SimError::Task(e.to_string()))
    }
}

/// Ends a [`LiveCall`]'s stream from another task (see [`LiveCall::stopper`]).
#[derive(Clone)]
pub struct Stopper(mpsc::UnboundedSender<Command>);

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(Command::HangUp);
    }
}

/// The request Twilio sends to a placed call's `Url` once it is answered
/// (protocols-more.md §1.3).
fn outbound_form<'a>(
    call_sid: &'a str,
    from: &'a str,
    to: &'a str,
) -> [(&'static str, &'a str); 9] {
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "in-progress"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "outbound-api"),
        ("From", from),
        ("To", to),
    ]
}

/// Plays a scripted call the server placed (see [`LiveCall::answer`]): the load test's
/// outbound unit.
pub async fn run_answered_call(url: &str, plan: CallPlan) -> Result<CallReport, SimError> {
    let client = twilio_client();
    let form = outbound_form(&plan.call_sid, &plan.from, &plan.to);
    let (twiml, stream) =
        fetch_stream_twiml(&client, url, plan.auth_token.as_deref(), &form).await?;
    let line = open(
        &client,
        twiml,
        stream,
        plan.auth_token.as_deref(),
        &plan.call_sid,
        None,
    )
    .await?;
    let script = Script::new(
        plan.utterances,
        plan.barge_in,
        Duration::from_millis(plan.hangup_after_ms),
    );
    Ok(line.run(Caller::Script(script), None).await)
}

/// Who decides what the caller says.
enum Caller {
    Script(Script),
    Steered(Steered),
}

/// How the conversation loop ended.
enum End {
    /// The caller is done: hang up politely.
    HangUp,
    /// The socket is gone (closed by the server, or dropped).
    Closed,
}

/// One connected call: the socket and everything the loop keeps between frames.
struct Line<S> {
    socket: S,
    wire: Writer,
    pacer: Pacer,
    playback: Playback,
    turns: Turns,
    /// Shared with a [`LiveCall`] for snapshots; never borrowed across an await.
    report: Rc<RefCell<CallReport>>,
    /// Where a [`LiveCall`] receives events; `None` for [`run_call`].
    events: Option<mpsc::UnboundedSender<Event>>,
    call_sid: String,
    /// The caller's next frame.
    frame: [u8; FRAME_BYTES],
    /// Decoded server payloads, reused.
    scratch: Vec<u8>,
    audio_received_bytes: u64,
    /// On-wire tagging, when the plan asks for it.
    on_wire: Option<OnWire>,
}

/// Places the call: webhook → TwiML → socket → `connected` + `start`.
async fn dial(
    target: &str,
    auth_token: Option<&str>,
    call_sid: &str,
    from: &str,
    to: &str,
    events: Option<mpsc::UnboundedSender<Event>>,
) -> Result<Line<impl Socket>, SimError> {
    let client = twilio_client();
    let (twiml, stream) = fetch_twiml(&client, target, auth_token, call_sid, from, to).await?;
    open(&client, twiml, stream, auth_token, call_sid, events).await
}

/// The simulated Twilio's HTTP client, on the product's connector: TCP_NODELAY (a caller
/// frame must not wait for an ACK) and, for a `wss://` target, HTTP/1.1-only ALPN.
fn twilio_client() -> awc::Client {
    awc::Client::builder()
        .connector(actors::http::connector(actors::http::Alpn::Http1Only))
        .timeout(HTTP_TIMEOUT)
        .finish()
}

/// Opens the stream a TwiML document asked for: socket upgrade, `connected` + `start`.
async fn open(
    client: &awc::Client,
    twiml: String,
    stream: StreamTwiml,
    auth_token: Option<&str>,
    call_sid: &str,
    events: Option<mpsc::UnboundedSender<Event>>,
) -> Result<Line<impl Socket>, SimError> {
    let mut upgrade = client.ws(stream.url.as_str()).max_frame_size(MAX_FRAME);
    if let Some(token) = auth_token {
        // The upgrade is a GET without a body: the signature covers the URL alone (§7.5).
        upgrade = upgrade.set_header(SIGNATURE_HEADER, sign(token, &stream.url, &[]));
    }
    let (_, mut socket) = upgrade.connect().await.map_err(|e| SimError::Connect {
        url: stream.url.clone(),
        reason: e.to_string(),
    })?;

    let mut wire = Writer::new(format!("MZ{:032x}", rand::random::<u128>()));
    let connected = wire.connected()?;
    socket.send(connected).await.map_err(socket_error)?;
    let start = wire.start(&StartInfo {
        account_sid: ACCOUNT_SID,
        call_sid,
        custom_parameters: &stream.parameters,
    })?;
    socket.send(start).await.map_err(socket_error)?;
    let report = CallReport {
        twiml,
        stream_url: stream.url,
        custom_parameters: stream.parameters,
        ..CallReport::default()
    };
    Ok(Line {
        socket,
        wire,
        // The stream's clock starts with `start`: the first media frame is due now.
        pacer: Pacer::new(Instant::now()),
        playback: Playback::default(),
        turns: Turns::default(),
        report: Rc::new(RefCell::new(report)),
        events,
        call_sid: call_sid.to_owned(),
        frame: SILENT_FRAME,
        scratch: Vec::new(),
        audio_received_bytes: 0,
        on_wire: None,
    })
}

/// Posts the incoming-call webhook with the parameters Twilio always sends (§3.1) and reads
/// the `<Connect><Stream>` from the answer.
async fn fetch_twiml(
    client: &awc::Client,
    target: &str,
    auth_token: Option<&str>,
    call_sid: &str,
    from: &str,
    to: &str,
) -> Result<(String, StreamTwiml), SimError> {
    let url = format!("{}/twilio/voice", target.trim_end_matches('/'));
    let form = [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ];
    fetch_stream_twiml(client, &url, auth_token, &form).await
}

/// Posts a voice webhook (signed when a token is given) and reads the `<Connect><Stream>`
/// from the answer.
pub(super) async fn fetch_stream_twiml(
    client: &awc::Client,
    url: &str,
    auth_token: Option<&str>,
    form: &[(&str, &str)],
) -> Result<(String, StreamTwiml), SimError> {
    let twiml = post_webhook(client, url, auth_token, form).await?;
    let stream = parse_stream(&twiml)?;
    Ok((twiml, stream))
}

/// What the simulated Twilio did with a `<Record>` ([`leave_voicemail`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoicemailReport {
    /// The `<Record>`'s attributes, as the TwiML gave them.
    pub attributes: BTreeMap<String, String>,
    /// The `<Say>`s before it.
    pub prompt: Vec<String>,
    pub recording_sid: String,
    pub recording_url: String,
    /// The TwiML the `action` answered.
    pub action_twiml: String,
    /// Whether the transcription callback was posted (and answered 2xx).
    pub transcribed: bool,
}

/// Follows `<Record>` TwiML as Twilio does (protocols-more.md §3): the caller says
/// `said`, then Twilio posts the `action` (`RecordingUrl`, `RecordingDuration`, `Digits`)
/// and — with `transcribe="true"` and a `transcribeCallback` — the transcription
/// (`TranscriptionSid`, `TranscriptionText`, `TranscriptionStatus=completed`,
/// `TranscriptionUrl`, `RecordingSid`, `RecordingUrl` and the standard call fields), each
/// signed when a token is given. Without an `action` Twilio would re-request the document
/// (a loop): that is reported as an error.
pub async fn leave_voicemail(
    twiml: &str,
    auth_token: Option<&str>,
    call_sid: &str,
    from: &str,
    to: &str,
    said: &str,
) -> Result<VoicemailReport, SimError> {
    let record = parse_record(twiml)?;
    let action = record
        .attributes
        .get("action")
        .cloned()
        .ok_or(super::TwimlError::Attribute(
            "<Record> has no action: Twilio would loop",
        ))?;
    let account = "AC00000000000000000000000000000000";
    let tail: String = call_sid.chars().skip(2).collect();
    let recording_sid = format!("RE{tail}");
    let recording_url =
        format!("https://api.twilio.com/2010-04-01/Accounts/{account}/Recordings/{recording_sid}");
    // A word a second or so, at least two seconds (Twilio transcribes only longer ones).
    let duration = (said.split_whitespace().count() / 2).max(3).to_string();
    let client = twilio_client();
    let call = [
        ("CallSid", call_sid),
        ("AccountSid", account),
        ("From", from),
        ("To", to),
        ("CallStatus", "in-progress"),
        ("ApiVersion", "2010-04-01"),
        ("Direction", "inbound"),
    ];
    let mut form = call.to_vec();
    form.extend([
        ("RecordingUrl", recording_url.as_str()),
        ("RecordingDuration", duration.as_str()),
        ("Digits", "hangup"),
    ]);
    let action_twiml = post_webhook(&client, &action, auth_token, &form).await?;
    let mut report = VoicemailReport {
        attributes: record.attributes.clone(),
        prompt: record.said_before,
        recording_sid: recording_sid.clone(),
        recording_url: recording_url.clone(),
        action_twiml,
        transcribed: false,
    };
    let transcribe = record.attributes.get("transcribe").map(String::as_str) == Some("true");
    let Some(callback) = record
        .attributes
        .get("transcribeCallback")
        .filter(|_| transcribe)
    else {
        return Ok(report);
    };
    let transcription_sid = format!("TR{tail}");
    let transcription_url = format!(
        "https://api.twilio.com/2010-04-01/Accounts/{account}/Transcriptions/{transcription_sid}"
    );
    let mut form = call.to_vec();
    form.extend([
        ("TranscriptionSid", transcription_sid.as_str()),
        ("TranscriptionText", said),
        ("TranscriptionStatus", "completed"),
        ("TranscriptionUrl", transcription_url.as_str()),
        ("RecordingSid", recording_sid.as_str()),
        ("RecordingUrl", recording_url.as_str()),
    ]);
    post_webhook(&client, callback, auth_token, &form).await?;
    report.transcribed = true;
    Ok(report)
}

/// Posts a form to one of the server's webhooks as Twilio does (signed over the exact URL
/// when a token is given) and returns a successful answer's body.
pub(super) async fn post_webhook(
    client: &awc::Client,
    url: &str,
    auth_token: Option<&str>,
    form: &[(&str, &str)],
) -> Result<String, SimError> {
    let mut request = client.post(url);
    if let Some(token) = auth_token {
        request = request.insert_header((SIGNATURE_HEADER, sign(token, url, form)));
    }
    let failed = |reason: String| SimError::Webhook {
        url: url.to_owned(),
        reason,
    };
    let mut response = request
        .send_form(&form)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let body = response
        .body()
        .limit(TWIML_LIMIT)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if !response.status().is_success() {
        return Err(SimError::WebhookStatus {
            url: url.to_owned(),
            status: response.status().as_u16(),
            body,
        });
    }
    Ok(body)
}

/// `X-Twilio-Signature` for a request to `url` with form `params` (none for the upgrade).
fn sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    actors::protocol::twilio::signature::compute(token, url, &params)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn socket_error(e: WsProtocolError) -> SimError {
    SimError::Socket(e.to_string())
}

/// Waits for the test's next command; a scripted call never gets one.
async fn next_command(commands: &mut Option<mpsc::UnboundedReceiver<Command>>) -> Option<Command> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl<S: Socket> Line<S> {
    /// Runs the call to its end and returns the final report.
    async fn run(
        mut self,
        mut caller: Caller,
        mut commands: Option<mpsc::UnboundedReceiver<Command>>,
    ) -> CallReport {
        let outcome = match self.converse(&mut caller, &mut commands).await {
            Ok(End::HangUp) => self.hang_up().await,
            Ok(End::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            self.report.borrow_mut().error = Some(e.to_string());
            self.closed(None);
        }
        let report = self.report.borrow().clone();
        report
    }

    /// The per-call loop: pace the caller's frames, read the server's, obey the test.
    async fn converse(
        &mut self,
        caller: &mut Caller,
        commands: &mut Option<mpsc::UnboundedReceiver<Command>>,
    ) -> Result<End, SimError> {
        let tick = sleep_until(self.pacer.next_deadline());
        tokio::pin!(tick);
        loop {
            tokio::select! {
                // Pacing first: a frame due now must not wait behind a burst of server frames.
                biased;
                () = &mut tick => {
                    if !self.tick(caller).await? {
                        return Ok(End::HangUp);
                    }
                    tick.as_mut().reset(self.pacer.next_deadline());
                }
                frame = self.socket.next() => match frame {
                    Some(Ok(frame)) => {
                        if self.on_frame(frame).await? {
                            return Ok(End::Closed);
                        }
                    }
                    Some(Err(e)) => return Err(socket_error(e)),
                    None => {
                        self.closed(None);
                        return Ok(End::Closed);
                    }
                },
                command = next_command(commands) => match (command, &mut *caller) {
                    (Some(Command::Say(ulaw)), Caller::Steered(steered)) => steered.say(ulaw),
                    (Some(Command::Say(_)), Caller::Script(_)) => {}
                    (Some(Command::Press(digit)), _) => {
                        let frame = self.wire.dtmf(&digit)?;
                        self.socket.send(frame).await.map_err(socket_error)?;
                    }
                    (Some(Command::HangUp) | None, _) => return Ok(End::HangUp),
                },
            }
        }
    }

    /// One frame slot: echo the marks whose audio has played, then send the caller's frame.
    /// `false` when the caller hangs up instead. Marks are thus echoed on the first slot after
    /// their audio ends (at most 20 ms later), as a gateway playing 20 ms frames would; marks
    /// with nothing before them, and marks flushed by `clear`, go out at once.
    async fn tick(&mut self, caller: &mut Caller) -> Result<bool, SimError> {
        let at = Instant::now();
        let now = at.saturating_duration_since(self.pacer.t0());
        while let Some(name) = self.playback.pop_due(now) {
            self.echo(name, false).await?;
        }
        let playing = self.playback.is_playing(now);
        let step = match caller {
            Caller::Script(script) => script.next(now, self.turns.heard(playing), &mut self.frame),
            Caller::Steered(steered) => steered.next(&mut self.frame),
        };
        let speech = match step {
            Step::HangUp => return Ok(false),
            Step::Speech => true,
            Step::Silence => false,
        };
        self.turns.on_frame(now, speech, playing);
        let stamp = self.pacer.sent(at);
        let mut audio = if speech { self.frame } else { SILENT_FRAME };
        if let Some(on_wire) = &self.on_wire {
            // Stamped as the frame is written: serialising it and handing it to the socket
            // take a few µs.
            Tag::new(on_wire.call, stamp.chunk, onwire::now_us()).write(&mut audio);
        }
        let frame = self.wire.media(&stamp, &audio)?;
        self.send(frame).await?;
        let mut report = self.report.borrow_mut();
        report.frames_sent += 1;
        report.frames_late += u64::from(stamp.late);
        Ok(true)
    }

    /// Handles one frame from the server; `true` when the server closed the socket.
    async fn on_frame(&mut self, frame: Frame) -> Result<bool, SimError> {
        match frame {
            Frame::Text(text) => self.on_text(&text).await?,
            // Twilio warns (31950) and ignores binary frames.
            Frame::Binary(_) => self.invalid("binary frame", "<binary>"),
            Frame::Continuation(_) => self.invalid("fragmented frame", "<continuation>"),
            Frame::Ping(payload) => self.send(Message::Pong(payload)).await?,
            Frame::Pong(_) => {}
            Frame::Close(reason) => {
                let code = reason.as_ref().map(|r| u16::from(r.code));
                // Answer the close; the socket is finished either way.
                let _ = self.socket.send(Message::Close(reason)).await;
                self.closed(code);
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn on_text(&mut self, text: &[u8]) -> Result<(), SimError> {
        // Read first: the frame's arrival, before any work of ours.
        let read_us = self.on_wire.as_ref().map(|_| onwire::now_us());
        let now = Instant::now().saturating_duration_since(self.pacer.t0());
        let frame = match parse_server_frame(text, self.wire.stream_sid(), &mut self.scratch) {
            Ok(frame) => frame,
            Err(why) => {
                self.invalid(&why.to_string(), &String::from_utf8_lossy(text));
                return Ok(());
            }
        };
        match frame {
            ServerFrame::Media { bytes } => {
                if let (Some(on_wire), Some(read_us)) = (&self.on_wire, read_us) {
                    if let Some(tag) = Tag::read(&self.scratch) {
                        on_wire.heard.record(tag.latency(read_us));
                    }
                }
                self.playback.push_audio(now, ulaw_duration(bytes));
                let latency = self.turns.on_audio(now);
                self.audio_received_bytes = self.audio_received_bytes.saturating_add(bytes as u64);
                let at_ms = millis(now);
                {
                    let mut report = self.report.borrow_mut();
                    report.media_received += 1;
                    report.audio_received_ms = self.audio_received_bytes / 8;
                    report.first_audio_at_ms.get_or_insert(at_ms);
                    if let Some(latency) = latency {
                        report.turn_latencies_ms.push(millis(latency));
                    }
                    if report.events.last().map(String::as_str) != Some("media") {
                        push_capped(&mut report.events, || "media".to_owned());
                    }
                }
                self.emit(|| Event::Media { bytes, at_ms });
            }
            ServerFrame::Mark { name } => {
                let name = name.into_owned();
                self.report.borrow_mut().marks_received += 1;
                self.log(|| format!("mark:{name}"));
                self.emit(|| Event::Mark { name: name.clone() });
                if let Some(name) = self.playback.push_mark(now, name) {
                    self.echo(name, false).await?;
                }
            }
            ServerFrame::Clear => {
                let latency = self.turns.on_clear(now);
                {
                    let mut report = self.report.borrow_mut();
                    report.clears_received += 1;
                    if let Some(latency) = latency {
                        report.barge_in_latencies_ms.push(millis(latency));
                    }
                }
                self.log(|| "clear".to_owned());
                self.emit(|| Event::Clear);
                let flushed: Vec<String> = self.playback.clear(now).collect();
                for name in flushed {
                    self.echo(name, true).await?;
                }
            }
        }
        Ok(())
    }

    /// Echoes a mark: its audio has played, or a `clear` flushed it.
    async fn echo(&mut self, name: String, flushed: bool) -> Result<(), SimError> {
        let frame = self.wire.mark(&name)?;
        self.send(frame).await?;
        {
            let mut report = self.report.borrow_mut();
            report.marks_echoed += 1;
            report.marks_flushed_by_clear += u64::from(flushed);
        }
        self.log(|| match flushed {
            true => format!("flushed:{name}"),
            false => format!("echo:{name}"),
        });
        self.emit(|| Event::MarkEchoed { name, flushed });
        Ok(())
    }

    /// The caller hangs up: `stop`, close 1000, then wait briefly for the server's close.
    async fn hang_up(&mut self) -> Result<(), SimError> {
        let stop = self.wire.stop(ACCOUNT_SID, &self.call_sid)?;
        self.send(stop).await?;
        self.send(Message::Close(Some(CloseCode::Normal.into())))
            .await?;
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            match timeout_at(deadline, self.socket.next()).await {
                // After `stop`, whatever the server still sends is moot.
                Ok(Some(Ok(Frame::Close(reason)))) => {
                    self.closed(reason.map(|r| u16::from(r.code)));
                    return Ok(());
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(socket_error(e)),
                Ok(None) | Err(_) => {
                    self.closed(None);
                    return Ok(());
                }
            }
        }
    }

    /// A frame Twilio would reject: logged and shown to the test, the call goes on.
    fn invalid(&self, why: &str, text: &str) {
        self.log(|| format!("invalid:{why}"));
        self.emit(|| Event::Text(text.to_owned()));
    }

    fn closed(&self, code: Option<u16>) {
        self.report.borrow_mut().close_code = code;
        self.log(|| match code {
            Some(code) => format!("close:{code}"),
            None => "close:none".to_owned(),
        });
        self.emit(|| Event::Closed { code });
    }

    async fn send(&mut self, frame: Message) -> Result<(), SimError> {
        self.socket.send(frame).await.map_err(socket_error)
    }

    fn log(&self, entry: impl FnOnce() -> String) {
        push_capped(&mut self.report.borrow_mut().events, entry);
    }

    /// Hands an event to the [`LiveCall`], if any (building it only then).
    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(events) = &self.events {
            // The LiveCall may have been dropped mid-call; the call still ends cleanly.
            let _ = events.send(event());
        }
    }
}

fn push_capped(events: &mut Vec<String>, entry: impl FnOnce() -> String) {
    if events.len() < EVENT_LOG_CAP {
        events.push(entry());
    }
}
