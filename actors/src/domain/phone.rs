//! Phone numbers as every channel writes them, made E.164 before they key anything
//! (customers, threads, memory, bookings, orders).
//!
//! Twilio's webhooks send E.164 (`+14155550101`), WhatsApp's with a `whatsapp:` prefix; a
//! form whose `+` was not percent-encoded arrives with a space in its place
//! (`" 14155550101"`); people and catalogs write national forms (`(415) 555-0101`,
//! `020 7946 0018`) or international ones with separators (`+1 415-555-0101`,
//! `0044 20 …`). [`normalize`] turns all of these into one E.164 string, reading a
//! national number in the business's default country (`messaging.default_country`).
//!
//! Why a small rule set rather than libphonenumber's full metadata (the `phonenumber`
//! crate, several MB of generated tables): switchboard needs one canonical key per number,
//! not per-range validity or formatting, and the numbers it keys come from Twilio (already
//! E.164) or from the business's own country. Per-country rules are kept to what a
//! national number needs — calling code, trunk prefix, national length — and Twilio
//! Lookup (`lookup.enabled`) is the authority on whether a number really exists.

use std::ops::RangeInclusive;

/// What reading a national number of one country takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2, upper case (`US`).
    pub iso: &'static str,
    /// The country calling code, digits only (`1`).
    pub calling_code: &'static str,
    /// Dialled before a national number inside the country and dropped in E.164 (`0`).
    trunk_prefix: Option<&'static str>,
    /// Fewest and most digits of the national significant number (no trunk prefix).
    national_digits: (usize, usize),
    /// Dialled before an international number from inside the country.
    international_prefix: &'static str,
}

const fn country(
    iso: &'static str,
    calling_code: &'static str,
    trunk_prefix: Option<&'static str>,
    min: usize,
    max: usize,
    international_prefix: &'static str,
) -> Country {
    Country {
        iso,
        calling_code,
        trunk_prefix,
        national_digits: (min, max),
        international_prefix,
    }
}

/// The countries a default may name. Adding one is a line here.
const COUNTRIES: &[Country] = &[
    Country::US,
    country("CA", "1", Some("1"), 10, 10, "011"),
    country("GB", "44", Some("0"), 9, 10, "00"),
    country("IE", "353", Some("0"), 7, 9, "00"),
    country("DE", "49", Some("0"), 6, 13, "00"),
    country("FR", "33", Some("0"), 9, 9, "00"),
    country("ES", "34", None, 9, 9, "00"),
    // Italian numbers keep their leading 0 in E.164.
    country("IT", "39", None, 6, 11, "00"),
    country("NL", "31", Some("0"), 9, 9, "00"),
    country("BE", "32", Some("0"), 8, 9, "00"),
    country("CH", "41", Some("0"), 9, 9, "00"),
    country("AT", "43", Some("0"), 4, 13, "00"),
    country("SE", "46", Some("0"), 7, 9, "00"),
    country("PT", "351", None, 9, 9, "00"),
    country("PL", "48", None, 9, 9, "00"),
    country("AU", "61", Some("0"), 9, 9, "0011"),
    country("NZ", "64", Some("0"), 8, 10, "00"),
    country("MX", "52", None, 10, 10, "00"),
    country("BR", "55", Some("0"), 10, 11, "00"),
    country("IN", "91", Some("0"), 10, 10, "00"),
    country("JP", "81", Some("0"), 9, 10, "010"),
    country("SG", "65", None, 8, 8, "000"),
    country("ZA", "27", Some("0"), 9, 9, "00"),
];

impl Country {
    /// The United States: the default default.
    pub const US: Country = country("US", "1", Some("1"), 10, 10, "011");

    /// The country with ISO code `iso` (any case), if it is one switchboard can read.
    pub fn from_iso(iso: &str) -> Option<Country> {
        let iso = iso.trim();
        COUNTRIES
            .iter()
            .find(|c| c.iso.eq_ignore_ascii_case(iso))
            .copied()
    }

    /// The ISO codes a default country may be, for error messages.
    pub fn known() -> Vec<&'static str> {
        COUNTRIES.iter().map(|c| c.iso).collect()
    }

    fn national_length(&self, digits: usize) -> bool {
        (self.national_digits.0..=self.national_digits.1).contains(&digits)
    }

    fn is_nanp(&self) -> bool {
        self.calling_code == "1"
    }
}

/// Shortest and longest E.164 numbers accepted, digits after the `+`.
const E164_DIGITS: RangeInclusive<usize> = 8..=15;

/// Prefixes of an address that are not part of the number.
const SCHEMES: [&str; 4] = ["whatsapp:", "tel:", "sms:", "messenger:"];

/// The E.164 form of `raw`, reading a national number in `default`; `None` when `raw` is
/// not a phone number (`anonymous`, `client:alice`, a web id, letters, a number too short
/// or too long).
pub fn normalize(raw: &str, default: &Country) -> Option<String> {
    let mut rest = raw.trim_end();
    for scheme in SCHEMES {
        if let Some(head) = rest.get(..scheme.len()) {
            if head.eq_ignore_ascii_case(scheme) {
                rest = rest.get(scheme.len()..).unwrap_or_default();
                break;
            }
        }
    }
    // A `+` decoded as a space by a form parser: a leading space right before digits.
    let decoded_plus = rest.starts_with(' ')
        && rest
            .trim_start()
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit());
    let rest = rest.trim_start();
    let (plus, body) = match rest.strip_prefix('+') {
        Some(body) => (true, body),
        None => (decoded_plus, rest),
    };
    let digits = digits_of(body)?;
    if plus {
        return e164(&digits);
    }
    if let Some(international) = digits.strip_prefix(default.international_prefix) {
        return e164(international);
    }
    if default.international_prefix != "00" {
        // `00…` is how most of the world writes an international number; a national
        // number never starts with it.
        if let Some(international) = digits.strip_prefix("00") {
            return e164(international);
        }
    }
    national(&digits, default)
}

/// The digits of a number written with the usual separators; `None` if anything else is
/// in it (letters, an extension, a second `+`).
fn digits_of(body: &str) -> Option<String> {
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some(digits)
}

fn e164(digits: &str) -> Option<String> {
    let ok = E164_DIGITS.contains(&digits.len()) && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

fn national(digits: &str, country: &Country) -> Option<String> {
    let significant = match country.trunk_prefix {
        Some(trunk)
            if digits.starts_with(trunk) && country.national_length(digits.len() - trunk.len()) =>
        {
            digits.get(trunk.len()..)?
        }
        _ => digits,
    };
    if !country.national_length(significant.len()) {
        return None;
    }
    if country.is_nanp() && !significant.starts_with(|c: char| ('2'..='9').contains(&c)) {
        // A NANP area code never starts with 0 or 1.
        return None;
    }
    if country.trunk_prefix.is_some_and(|t| t == "0") && significant.starts_with('0') {
        return None;
    }
    e164(&format!("{}{significant}", country.calling_code))
}

/// Whether `s` is already an E.164 number, exactly (`+` and 8–15 digits, no leading 0).
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        E164_DIGITS.contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us() -> Country {
        Country::from_iso("us").expect("US is known")
    }

    #[test]
    fn every_form_of_one_us_number_is_one_key() {
        for raw in [
            "+14155550101",
            "(415) 555-0101",
            "415-555-0101",
            "415.555.0101",
            "4155550101",
            "1 415 555 0101",
            "+1 415 555 0101",
            "+1 (415) 555-0101",
            "whatsapp:+14155550101",
            "WhatsApp:+14155550101",
            "whatsapp: 14155550101",
            " 14155550101",
            "tel:+1-415-555-0101",
            "011 1 415 555 0101",
            "  +14155550101  ",
        ] {
            assert_eq!(
                normalize(raw, &us()).as_deref(),
                Some("+14155550101"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn national_numbers_follow_the_default_country() {
        let gb = Country::from_iso("GB").expect("GB");
        assert_eq!(
            normalize("020 7946 0018", &gb).as_deref(),
            Some("+442079460018")
        );
        assert_eq!(
            normalize("07700 900123", &gb).as_deref(),
            Some("+447700900123")
        );
        assert_eq!(
            normalize("0044 20 7946 0018", &gb).as_deref(),
            Some("+442079460018")
        );
        // An international number is the same whatever the default.
        assert_eq!(
            normalize("+44 20 7946 0018", &us()).as_deref(),
            Some("+442079460018")
        );
        assert_eq!(
            normalize("0044 20 7946 0018", &us()).as_deref(),
            Some("+442079460018")
        );
        let it = Country::from_iso("IT").expect("IT");
        assert_eq!(
            normalize("06 6982 1234", &it).as_deref(),
            Some("+390669821234")
        );
    }

    #[test]
    fn what_is_not_a_phone_number_keys_nothing() {
        for raw in [
            "",
            "   ",
            "anonymous",
            "client:alice",
            "sip:bob@example.com",
            "web:abcdefgh",
            "+1",
            "+0123456789",
            "555-0101",
            "(015) 555-0101",
            "415 555 0101 ext 12",
            "+1415555010199999999",
            "++14155550101",
            "whatsapp:",
        ] {
            assert_eq!(normalize(raw, &us()), None, "{raw:?}");
        }
        assert!(Country::from_iso("XX").is_none());
        assert!(Country::known().contains(&"US"));
    }

    proptest! {
        #[test]
        fn e164_numbers_are_kept_and_normalising_is_idempotent(
            digits in "[1-9][0-9]{7,14}",
            sep in prop::sample::select(vec!["", " ", "-", "."]),
        ) {
            let e164 = format!("+{digits}");
            prop_assert_eq!(normalize(&e164, &us()), Some(e164.clone()));
            // Separators anywhere after the first digit change nothing.
            let (head, tail) = digits.split_at(1);
            let spaced = format!("+{head}{sep}{tail}");
            prop_assert_eq!(normalize(&spaced, &us()), Some(e164.clone()));
            prop_assert_eq!(normalize(&format!("whatsapp:{e164}"), &us()), Some(e164.clone()));
            prop_assert_eq!(normalize(&format!(" {digits}"), &us()), Some(e164.clone()));
            let once = normalize(&e164, &us()).unwrap_or_default();
            prop_assert_eq!(normalize(&once, &us()), Some(once.clone()));
            prop_assert!(is_e164(&once));
        }

        #[test]
        fn any_input_gives_e164_or_nothing(raw in "\\PC{0,30}") {
            for country in COUNTRIES {
                if let Some(number) = normalize(&raw, country) {
                    prop_assert!(is_e164(&number), "{raw:?} -> {number}");
                }
            }
        }

        #[test]
        fn us_national_numbers_gain_the_country_code(
            area in "[2-9][0-9]{2}", exchange in "[0-9]{3}", line in "[0-9]{4}",
        ) {
            let expected = format!("+1{area}{exchange}{line}");
            prop_assert_eq!(normalize(&format!("({area}) {exchange}-{line}"), &us()), Some(expected.clone()));
            prop_assert_eq!(normalize(&format!("1-{area}-{exchange}-{line}"), &us()), Some(expected));
        }
    }
}
