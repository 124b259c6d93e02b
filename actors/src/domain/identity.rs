//! Who a caller is, for memory, bookings and texts.
//!
//! A caller with a phone number is that number (E.164), shared with their texts. Callers
//! without a usable one — withheld numbers (`anonymous`), Twilio Client (`client:alice`),
//! SIP (`sip:…`) — get an identity of their own call (`call:<CallSid>`), so two anonymous
//! callers never share memory or bookings, and nothing can be texted to them.

use super::catalog::is_e164;

/// Prefix of the per-call identities of callers without a phone number.
pub const CALL_PREFIX: &str = "call:";

/// The customer key of a caller: `from` when it is a phone number, else their call's own.
pub fn caller_key(from: Option<&str>, call_sid: &str) -> String {
    match from.map(str::trim).filter(|from| is_e164(from)) {
        Some(number) => number.to_owned(),
        None => format!("{CALL_PREFIX}{call_sid}"),
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

    #[test]
    fn callers_without_a_number_get_an_identity_of_their_own() {
        assert_eq!(caller_key(Some("+14155550101"), "CA1"), "+14155550101");
        for from in [
            None,
            Some("anonymous"),
            Some("client:alice"),
            Some("sip:bob@example.com"),
            Some(""),
        ] {
            assert_eq!(caller_key(from, "CA1"), "call:CA1", "{from:?}");
        }
        assert_ne!(
            caller_key(Some("anonymous"), "CA1"),
            caller_key(Some("anonymous"), "CA2")
        );
        assert_eq!(phone_number("+14155550101"), Some("+14155550101"));
        assert_eq!(phone_number("call:CA1"), None);
        assert_eq!(phone_number("web:abcdefgh"), None);
        assert!(is_lasting("+14155550101") && is_lasting("web:abcdefgh"));
        assert!(!is_lasting("call:CA1"));
    }
}
