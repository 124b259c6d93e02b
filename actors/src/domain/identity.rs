//! Who a caller is, for memory, bookings and texts.
//!
//! A caller with a phone number is that number (E.164), shared with their texts. Callers
//! without a usable one — withheld numbers (`anonymous`), Twilio Client (`client:alice`),
//! SIP (`sip:…`) — get an identity of their own call (`call:<CallSid>`), so two anonymous
//! callers never share memory or bookings, and nothing can be texted to them.
//!
//! Every channel's address goes through [`super::phone::normalize`] here, so one number
//! written any way (`whatsapp:+1…`, `(415) 555-0101`, a `+` decoded as a space) is one
//! customer.

use super::phone::{is_e164, normalize, Country};

/// Prefix of the per-call identities of callers without a phone number.
pub const CALL_PREFIX: &str = "call:";
/// Prefix of Twilio Conversations participants who are not phone numbers (chat users).
pub const CONVERSATIONS_PREFIX: &str = "conversations:";

/// The customer key of a caller: `from` when it is a phone number, else their call's own.
pub fn caller_key(from: Option<&str>, call_sid: &str, country: &Country) -> String {
    match from.and_then(|from| normalize(from, country)) {
        Some(number) => number,
        None => format!("{CALL_PREFIX}{call_sid}"),
    }
}

/// The customer key of a Messaging webhook's `From` (SMS, MMS, WhatsApp): the number in
/// E.164; an address that is no phone number (another channel's id) keys as written.
pub fn sender_key(from: &str, country: &Country) -> String {
    normalize(from, country).unwrap_or_else(|| from.trim().to_owned())
}

/// The customer key of a Twilio Conversations `Author`: a phone participant (`+1…`,
/// `whatsapp:+1…`) is the same customer as on SMS; chat identities stay apart.
pub fn conversations_key(author: &str, country: &Country) -> String {
    match normalize(author, country) {
        Some(number) => number,
        None => format!("{CONVERSATIONS_PREFIX}{}", author.trim()),
    }
}

/// A customer key as the engine keeps it: a key that is a phone number written any way
/// becomes E.164; any other key (`web:…`, `conversations:…`, `call:…`) is kept. The
/// engine's front door applies it to every text, whichever route produced the key.
pub fn canonical_key(key: &str, country: &Country) -> String {
    let prefixed = [CALL_PREFIX, CONVERSATIONS_PREFIX, "web:"]
        .iter()
        .any(|p| key.starts_with(p));
    if prefixed {
        return key.to_owned();
    }
    normalize(key, country).unwrap_or_else(|| key.to_owned())
}

/// Where a Messaging reply goes: the customer's number in E.164, with the `whatsapp:`
/// prefix when they wrote on WhatsApp (a reply must use the channel written on); an
/// address that is no number, as it came.
pub fn reply_address(from: &str, key: &str) -> String {
    if !is_e164(key) {
        return from.to_owned();
    }
    let whatsapp = from
        .trim_start()
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("whatsapp:"));
    if whatsapp {
        format!("whatsapp:{key}")
    } else {
        key.to_owned()
    }
}

/// Whether the customer has a lasting identity — memory and a thread worth keeping across
/// contacts — rather than one of a single call.
pub fn is_lasting(key: &str) -> bool {
    !key.starts_with(CALL_PREFIX)
}

/// The phone number behind a customer key, if it is one (texts can be sent to it).
pub fn phone_number(key: &str) -> Option<&str> {
    is_e164(key).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Country = Country::US;

    #[test]
    fn every_channel_keys_one_number_the_same_way() {
        assert_eq!(
            caller_key(Some("+1 415 555 0101"), "CA1", &US),
            "+14155550101"
        );
        assert_eq!(sender_key("whatsapp:+14155550101", &US), "+14155550101");
        assert_eq!(sender_key(" 14155550101", &US), "+14155550101");
        assert_eq!(conversations_key("(415) 555-0101", &US), "+14155550101");
        assert_eq!(conversations_key("alice", &US), "conversations:alice");
        assert_eq!(sender_key("messenger:abc", &US), "messenger:abc");
    }

    #[test]
    fn keys_are_canonical_and_replies_keep_the_channel() {
        assert_eq!(canonical_key("+1 (415) 555-0101", &US), "+14155550101");
        for kept in [
            "web:abc123",
            "conversations:alice",
            "call:CA1",
            "messenger:x",
        ] {
            assert_eq!(canonical_key(kept, &US), kept);
        }
        assert_eq!(
            reply_address("whatsapp: 14155550101", "+14155550101"),
            "whatsapp:+14155550101"
        );
        assert_eq!(
            reply_address(" 14155550101", "+14155550101"),
            "+14155550101"
        );
        assert_eq!(reply_address("messenger:x", "messenger:x"), "messenger:x");
    }

    #[test]
    fn callers_without_a_number_get_an_identity_of_their_own() {
        assert_eq!(caller_key(Some("+14155550101"), "CA1", &US), "+14155550101");
        for from in [
            None,
            Some("anonymous"),
            Some("client:alice"),
            Some("sip:bob@example.com"),
            Some(""),
        ] {
            assert_eq!(caller_key(from, "CA1", &US), "call:CA1", "{from:?}");
        }
        assert_ne!(
            caller_key(Some("anonymous"), "CA1", &US),
            caller_key(Some("anonymous"), "CA2", &US)
        );
        assert_eq!(phone_number("+14155550101"), Some("+14155550101"));
        assert_eq!(phone_number("call:CA1"), None);
        assert_eq!(phone_number("web:abcdefgh"), None);
        assert!(is_lasting("+14155550101") && is_lasting("web:abcdefgh"));
        assert!(!is_lasting("call:CA1"));
    }
}
