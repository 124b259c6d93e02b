//! SMS webhook load (`--sms-rate`): Twilio's incoming-message webhook (`POST
//! /twilio/messaging`, signed when a token is given) at a steady rate, from a pool of senders
//! large enough that none nears the per-sender limit, each answered inline with TwiML.
//!
//! Message `n` goes to target `n` modulo the number of targets (a cluster's nodes in turn).
//! Each generator thread sends its share of the rate on absolute deadlines `start + n / rate`
//! and keeps at most [`MAX_IN_FLIGHT`] requests open; a deadline that finds the cap reached is
//! counted as `behind` (the server is not keeping up) rather than queued.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::Quantiles;

/// Twilio gives up on a webhook after 15 s.
const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_IN_FLIGHT: usize = 512;
/// Answers are short TwiML; this only bounds a runaway server.
const BODY_LIMIT: usize = 64 * 1024;
const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const TO: &str = "+18005550100";
const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// What customers write: an order question the demo catalog can answer.
const BODY: &str = "Hi, where is my order 1001?";
/// Each sender writes at most once every this many seconds, well under the default 30 per
/// minute; the pool is sized from it.
const SECONDS_PER_SENDER: f64 = 4.0;

/// Senders needed so that none writes more often than once every [`SECONDS_PER_SENDER`].
pub(super) fn sender_pool(rate: f64) -> u64 {
    // `as` saturates; at least one sender.
    ((rate * SECONDS_PER_SENDER).ceil() as u64).max(1)
}

/// One thread's share of the SMS load.
#[derive(Clone, Debug)]
pub(super) struct SmsPlan {
    /// One server, or a cluster's nodes in turn.
    pub(super) targets: Vec<String>,
    pub(super) auth_token: Option<String>,
    /// Messages per second from this thread.
    pub(super) rate: f64,
    pub(super) duration: Duration,
    /// Message numbers this thread uses: `first`, `first + stride`, …, so threads never share
    /// a `MessageSid` and spread over the sender pool.
    pub(super) first: u64,
    pub(super) stride: u64,
    pub(super) senders: u64,
}

/// What the SMS load saw.
#[derive(Clone, Debug, Default)]
pub(super) struct SmsTally {
    pub(super) sent: u64,
    /// `2xx` with a `<Message>`: answered inline.
    pub(super) answered: u64,
    /// `2xx` without one (a retry or a limit, answered with an empty `<Response>`).
    pub(super) empty: u64,
    /// Another status, or no answer at all.
    pub(super) failed: u64,
    /// Deadlines skipped because [`MAX_IN_FLIGHT`] requests were still open.
    pub(super) behind: u64,
    pub(super) latencies_ms: Vec<u64>,
    /// Of those, a sender's first message (the server starts a conversation) and the rest.
    pub(super) first_latencies_ms: Vec<u64>,
    pub(super) later_latencies_ms: Vec<u64>,
}

impl SmsTally {
    pub(super) fn add(&mut self, other: SmsTally) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.empty += other.empty;
        self.failed += other.failed;
        self.behind += other.behind;
        self.latencies_ms.extend(other.latencies_ms);
        self.first_latencies_ms.extend(other.first_latencies_ms);
        self.later_latencies_ms.extend(other.later_latencies_ms);
    }
}

/// The SMS part of the report.
#[derive(Clone, Debug, Serialize)]
pub struct SmsReport {
    pub rate_requested: f64,
    pub senders: u64,
    pub sent: u64,
    pub answered: u64,
    pub empty: u64,
    pub failed: u64,
    pub behind: u64,
    /// Answered messages per second of the SMS load's duration.
    pub answered_per_second: f64,
    /// Webhook posted → TwiML answer received.
    pub latency_ms: Option<Quantiles>,
    /// The same for each sender's first message — the server starts a conversation: reads
    /// the customer, claims them — which all come in the load's first seconds…
    pub first_message_latency_ms: Option<Quantiles>,
    /// …and for the messages of conversations under way.
    pub later_message_latency_ms: Option<Quantiles>,
    /// Server CPU per message sent, where the server's CPU is known and no calls ran.
    pub server_cpu_us_per_message: Option<f64>,
}

impl SmsReport {
    pub(super) fn new(rate: f64, duration: Duration, tally: SmsTally) -> SmsReport {
        let seconds = duration.as_secs_f64();
        SmsReport {
            rate_requested: rate,
            senders: sender_pool(rate),
            sent: tally.sent,
            answered: tally.answered,
            empty: tally.empty,
            failed: tally.failed,
            behind: tally.behind,
            answered_per_second: if seconds > 0.0 {
                tally.answered as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Quantiles::of(tally.latencies_ms),
            first_message_latency_ms: Quantiles::of(tally.first_latencies_ms),
            later_message_latency_ms: Quantiles::of(tally.later_latencies_ms),
            server_cpu_us_per_message: None,
        }
    }
}

/// The webhook form of message `n`, as Twilio posts it.
fn form(n: u64, senders: u64) -> Vec<(String, String)> {
    let sid = format!("SM{n:032x}");
    let from = format!("+1666{:07}", n % senders.max(1) % 10_000_000);
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("Body", BODY),
        ("From", from.as_str()),
        ("MessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsMessageSid", sid.as_str()),
        ("SmsSid", sid.as_str()),
        ("SmsStatus", "received"),
        ("To", TO),
    ]
    .iter()
    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Sends this thread's share of the SMS load from `start` for the plan's duration, then waits
/// for the open requests. Runs on the thread's actix system.
pub(super) async fn run(plan: SmsPlan, start: Instant) -> SmsTally {
    let tally = Rc::new(RefCell::new(SmsTally::default()));
    if plan.rate <= 0.0 {
        return SmsTally::default();
    }
    let client = awc::Client::builder()
        .connector(actors::http::connector(actors::http::Alpn::H2AndHttp1))
        .timeout(TIMEOUT)
        .finish();
    let urls: Vec<String> = plan
        .targets
        .iter()
        .map(|target| format!("{target}/twilio/messaging"))
        .collect();
    let in_flight = Rc::new(RefCell::new(0usize));
    let end = start + plan.duration;
    for n in 0u64.. {
        let due = start + Duration::from_secs_f64(n as f64 / plan.rate);
        if due >= end {
            break;
        }
        actix_web::rt::time::sleep_until(due.into()).await;
        if *in_flight.borrow() >= MAX_IN_FLIGHT {
            tally.borrow_mut().behind += 1;
            continue;
        }
        let number = plan.first + n * plan.stride;
        let params = form(number, plan.senders);
        // Message numbers go round the senders: below the pool's size, a sender's first.
        let first_message = number < plan.senders;
        let url = super::targets::pick(&urls, number);
        let mut request = client.post(url);
        if let Some(token) = &plan.auth_token {
            let signature = actors::protocol::twilio::signature::compute(token, url, &params);
            request = request.insert_header((SIGNATURE_HEADER, signature));
        }
        *in_flight.borrow_mut() += 1;
        tally.borrow_mut().sent += 1;
        let (tally, in_flight) = (Rc::clone(&tally), Rc::clone(&in_flight));
        actix_web::rt::spawn(async move {
            let sent = Instant::now();
            let outcome = match request.send_form(&params).await {
                Ok(mut response) if response.status().is_success() => {
                    match response.body().limit(BODY_LIMIT).await {
                        Ok(body) => Some(contains(&body, b"<Message")),
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            let millis = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut tally = tally.borrow_mut();
            match outcome {
                Some(true) => {
                    tally.answered += 1;
                    tally.latencies_ms.push(millis);
                    if first_message {
                        tally.first_latencies_ms.push(millis);
                    } else {
                        tally.later_latencies_ms.push(millis);
                    }
                }
                Some(false) => tally.empty += 1,
                None => tally.failed += 1,
            }
            *in_flight.borrow_mut() -= 1;
        });
    }
    let drained_by = Instant::now() + TIMEOUT;
    while *in_flight.borrow() > 0 && Instant::now() < drained_by {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let tally = tally.borrow().clone();
    tally
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_pool_keeps_each_sender_far_below_the_limit() {
        assert_eq!(sender_pool(0.0), 1);
        assert_eq!(sender_pool(5000.0), 20_000);
        // Each sender then writes 15 times a minute at most.
        let per_minute = 5000.0 * 60.0 / sender_pool(5000.0) as f64;
        assert!(per_minute <= 15.0);
    }

    #[test]
    fn forms_carry_what_the_messaging_webhook_requires() {
        let form = form(7, 5);
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("MessageSid"),
            Some("SM00000000000000000000000000000007")
        );
        assert_eq!(get("From"), Some("+16660000002"));
        assert_eq!(get("To"), Some(TO));
        assert_eq!(get("Body"), Some(BODY));
        let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "sorted like Twilio's signing order");
    }

    #[test]
    fn tallies_add_up() {
        let mut a = SmsTally {
            sent: 2,
            answered: 1,
            latencies_ms: vec![5],
            ..SmsTally::default()
        };
        a.add(SmsTally {
            sent: 3,
            failed: 1,
            behind: 4,
            latencies_ms: vec![7, 9],
            ..SmsTally::default()
        });
        assert_eq!((a.sent, a.answered, a.failed, a.behind), (5, 1, 1, 4));
        let report = SmsReport::new(10.0, Duration::from_secs(2), a);
        assert_eq!(report.senders, 40);
        assert!((report.answered_per_second - 0.5).abs() < 1e-9);
        assert_eq!(report.latency_ms.map(|q| q.max), Some(9));
    }

    #[test]
    fn message_tags_are_found() {
        assert!(contains(
            b"<Response><Message>hi</Message></Response>",
            b"<Message"
        ));
        assert!(!contains(b"<Response/>", b"<Message"));
    }
}
