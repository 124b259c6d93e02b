//! `X-Twilio-Signature`: how every Twilio webhook and WebSocket handshake proves it came
//! from Twilio.
//!
//! The signature is `base64(HMAC-SHA1(auth_token, url + name₁value₁ + name₂value₂ …))` with
//! the form parameters sorted by name in byte order. A non-form body (JSON) is instead
//! covered by a `bodySHA256` query parameter, and the HMAC covers the URL alone.
//!
//! Twilio does not sign URLs consistently (voice over HTTPS drops the port, SMS keeps it;
//! credentials are dropped; media-stream handshakes may be signed with a trailing `/`), so
//! [`validate`] accepts a match on any of the URL variants the official libraries try.
//! Every variant is still bound to the auth token, so accepting them widens nothing an
//! attacker can forge.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The signature Twilio would send for a request to `url` carrying form `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    sign(auth_token, url, &sorted(params)).unwrap_or_default()
}

/// Whether `signature` (the `X-Twilio-Signature` header) is valid for this request.
///
/// * `url`: the full public URL Twilio requested, query string included, byte for byte
///   (for WebSocket handshakes, the `wss://` URL from the TwiML).
/// * `params`: every form parameter of a form-encoded POST (empty for GET and handshakes).
/// * `body`: the raw body when it is *not* form-encoded (JSON). Then the URL must carry a
///   matching `bodySHA256`, the signature covers the URL alone, and `params` is ignored.
///
/// Comparison is constant-time; an empty or malformed signature is simply invalid.
pub fn validate(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    body: Option<&[u8]>,
    signature: &str,
) -> bool {
    let params = match body {
        Some(body) if !body_hash_matches(url, body) => return false,
        Some(_) => Vec::new(),
        None => sorted(params),
    };
    url_variants(url).iter().any(|candidate| {
        sign(auth_token, candidate, &params)
            .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(signature.as_bytes())))
    })
}

/// Parameters in signing order: by name, then by value, each distinct pair once (the
/// python/node/php convention for repeated names).
fn sorted(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// `None` only if the MAC rejects the key, which HMAC never does (any key length is valid).
fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// `bodySHA256` in the query must be the lowercase hex SHA-256 of the raw body.
fn body_hash_matches(url: &str, body: &[u8]) -> bool {
    let Some(query) = UrlParts::split(url).and_then(|parts| parts.query()) else {
        return false;
    };
    let Some((_, claimed)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "bodySHA256")
    else {
        return false;
    };
    let actual = hex(&Sha256::digest(body));
    bool::from(
        actual
            .as_bytes()
            .ct_eq(claimed.to_ascii_lowercase().as_bytes()),
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The URL as given first, then the variants Twilio or its libraries may have signed:
/// the query's `'` percent-encoded or decoded (twilio-node), the port removed or the
/// scheme's default port added, credentials dropped, and for WebSockets a trailing `/`.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let expansions: [fn(&UrlParts<'_>) -> Vec<String>; 4] = [
        |url| url.requoted(),
        |url| url.port_variants(),
        |url| url.without_userinfo(),
        |url| url.with_trailing_slash(),
    ];
    for expand in expansions {
        let current = variants.clone();
        for variant in current.iter().filter_map(|url| UrlParts::split(url)) {
            for alternative in expand(&variant) {
                if !variants.contains(&alternative) {
                    variants.push(alternative);
                }
            }
        }
    }
    variants
}

/// A URL cut into the pieces signing variants touch, without normalising anything else:
/// the signed string must stay byte-for-byte what Twilio saw.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment, verbatim.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, after_scheme) = url.split_once("://")?;
        let authority_end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(authority_end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        // A `:` inside an IPv6 literal (`[::1]`) is not a port separator.
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (host_port, None),
        };
        Some(Self {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    fn join(&self, userinfo: Option<&str>, port: Option<&str>, rest: &str) -> String {
        let mut url = format!("{}://", self.scheme);
        if let Some(userinfo) = userinfo {
            url.push_str(userinfo);
            url.push('@');
        }
        url.push_str(self.host);
        if let Some(port) = port {
            url.push(':');
            url.push_str(port);
        }
        url.push_str(rest);
        url
    }

    fn path_and_query(&self) -> &'a str {
        self.rest
            .split_once('#')
            .map_or(self.rest, |(before, _)| before)
    }

    fn query(&self) -> Option<&'a str> {
        self.path_and_query()
            .split_once('?')
            .map(|(_, query)| query)
    }

    fn default_port(&self) -> Option<&'static str> {
        match self.scheme.to_ascii_lowercase().as_str() {
            "https" | "wss" => Some("443"),
            "http" | "ws" => Some("80"),
            _ => None,
        }
    }

    fn port_variants(&self) -> Vec<String> {
        match self.port {
            Some(_) => vec![self.join(self.userinfo, None, self.rest)],
            None => self
                .default_port()
                .map(|port| self.join(self.userinfo, Some(port), self.rest))
                .into_iter()
                .collect(),
        }
    }

    fn without_userinfo(&self) -> Vec<String> {
        self.userinfo
            .map(|_| self.join(None, self.port, self.rest))
            .into_iter()
            .collect()
    }

    /// twilio-node signs `'` in the query as `%27` (WHATWG URL) and also tries the
    /// legacy form with `%27` decoded.
    fn requoted(&self) -> Vec<String> {
        let Some((path, after_path)) = self.rest.split_once('?') else {
            return Vec::new();
        };
        let (query, fragment) = match after_path.split_once('#') {
            Some((query, fragment)) => (query, Some(fragment)),
            None => (after_path, None),
        };
        [("'", "%27"), ("%27", "'")]
            .into_iter()
            .filter(|(from, _)| query.contains(from))
            .map(|(from, to)| {
                let mut rest = format!("{path}?{}", query.replace(from, to));
                if let Some(fragment) = fragment {
                    rest.push('#');
                    rest.push_str(fragment);
                }
                self.join(self.userinfo, self.port, &rest)
            })
            .collect()
    }

    /// Twilio's advice for media-stream handshakes that fail to validate.
    fn with_trailing_slash(&self) -> Vec<String> {
        if !matches!(self.scheme.to_ascii_lowercase().as_str(), "ws" | "wss") {
            return Vec::new();
        }
        let path_end = self.rest.find(['?', '#']).unwrap_or(self.rest.len());
        let (path, tail) = self.rest.split_at(path_end);
        if path.ends_with('/') {
            return Vec::new();
        }
        vec![self.join(self.userinfo, self.port, &format!("{path}/{tail}"))]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/twilio_signature_vectors.json"
    );

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The vector file's params: a string, an array of strings (repeated name) or null ("").
    fn vector_params(params: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in params.as_object().expect("params object") {
            match value {
                Value::String(s) => out.push((name.clone(), s.clone())),
                Value::Array(values) => out.extend(
                    values
                        .iter()
                        .map(|v| (name.clone(), v.as_str().expect("string").to_owned())),
                ),
                Value::Null => out.push((name.clone(), String::new())),
                other => panic!("unexpected param value {other}"),
            }
        }
        out
    }

    #[test]
    fn every_fixture_vector_validates_as_expected() {
        let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
        let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert!(
            vectors.len() >= 26,
            "fixture file shrank: {}",
            vectors.len()
        );
        for vector in &vectors {
            let url = vector["url"].as_str().unwrap();
            let params = vector_params(&vector["params"]);
            let body = vector["body"].as_str().map(str::as_bytes);
            let token = vector["auth_token"].as_str().unwrap();
            let signature = vector["signature"].as_str().unwrap();
            let expected = vector["valid"].as_bool().unwrap();
            assert_eq!(
                validate(token, url, &params, body, signature),
                expected,
                "{vector}"
            );

            // Where the file says which URL was signed, `compute` must reproduce the signature.
            if let (Some(signed_url), true) = (vector["signed_url"].as_str(), expected) {
                let signed_params = if body.is_some() {
                    Vec::new()
                } else {
                    params.clone()
                };
                assert_eq!(
                    compute(token, signed_url, &signed_params),
                    signature,
                    "{vector}"
                );
            }
        }
    }

    #[test]
    fn documented_worked_example() {
        let params = pairs(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(
            compute(
                "12345",
                "https://example.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
    }

    #[test]
    fn sorting_is_bytewise_not_locale_aware() {
        // `CallSid` sorts before `Called` bytewise ('S' < 'e'); a locale sort puts it after.
        let a = pairs(&[("Called", "x"), ("CallSid", "y")]);
        let b = pairs(&[("CallSid", "y"), ("Called", "x")]);
        assert_eq!(
            compute("t", "https://h/", &a),
            compute("t", "https://h/", &b)
        );
        let mut mac = Hmac::<Sha1>::new_from_slice(b"t").unwrap();
        mac.update(b"https://h/CallSidyCalledx");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(compute("t", "https://h/", &a), expected);
    }

    #[test]
    fn wrong_token_tampered_params_or_empty_signature_fail() {
        let url = "https://example.com/twilio/voice";
        let params = pairs(&[("CallSid", "CA1"), ("From", "+15551234567")]);
        let signature = compute("secret", url, &params);
        assert!(validate("secret", url, &params, None, &signature));
        assert!(!validate("Secret", url, &params, None, &signature));
        assert!(!validate(
            "secret",
            url,
            &pairs(&[("CallSid", "CA2"), ("From", "+15551234567")]),
            None,
            &signature
        ));
        assert!(!validate("secret", url, &params[..1], None, &signature));
        assert!(!validate(
            "secret",
            "https://example.com/twilio/voice2",
            &params,
            None,
            &signature
        ));
        assert!(!validate("secret", url, &params, None, ""));
        assert!(!validate("secret", url, &params, None, &signature[..27]));
    }

    #[test]
    fn json_body_needs_a_matching_body_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let signature = compute("12345", url, &[]);
        assert!(validate("12345", url, &[], Some(body), &signature));
        // Form params are ignored when a body is given.
        assert!(validate(
            "12345",
            url,
            &pairs(&[("a", "b")]),
            Some(body),
            &signature
        ));
        // A different body fails even with a valid URL signature.
        assert!(!validate("12345", url, &[], Some(b"{}"), &signature));
        // A body without `bodySHA256` in the URL fails.
        let bare = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(!validate(
            "12345",
            bare,
            &[],
            Some(body),
            &compute("12345", bare, &[])
        ));
    }

    #[test]
    fn websocket_handshakes_may_be_signed_with_a_trailing_slash() {
        let signature = compute("t", "wss://example.com/twilio/media/", &[]);
        assert!(validate(
            "t",
            "wss://example.com/twilio/media",
            &[],
            None,
            &signature
        ));
        // Only for WebSocket URLs.
        let signature = compute("t", "https://example.com/twilio/voice/", &[]);
        assert!(!validate(
            "t",
            "https://example.com/twilio/voice",
            &[],
            None,
            &signature
        ));
    }

    #[test]
    fn credentials_dropped_by_twilio_still_validate() {
        let signature = compute("t", "https://example.com/hook", &[]);
        assert!(validate(
            "t",
            "https://user:pass@example.com/hook",
            &[],
            None,
            &signature
        ));
    }

    #[test]
    fn url_parts_keep_ipv6_hosts_and_fragments() {
        let variants = url_variants("http://[::1]/p?q='#f");
        assert!(
            variants.contains(&"http://[::1]:80/p?q='#f".to_owned()),
            "{variants:?}"
        );
        assert!(
            variants.contains(&"http://[::1]/p?q=%27#f".to_owned()),
            "{variants:?}"
        );
        let variants = url_variants("https://[::1]:8443/p");
        assert!(
            variants.contains(&"https://[::1]/p".to_owned()),
            "{variants:?}"
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            token in ".*",
            url in ".*",
            params in proptest::collection::vec((".*", ".*"), 0..5),
            body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            signature in ".*",
        ) {
            let _ = compute(&token, &url, &params);
            let _ = validate(&token, &url, &params, body.as_deref(), &signature);
        }

        #[test]
        fn url_shaped_input_never_panics(
            url in "(https?|wss?|x)://([a-z]{0,3}(:[a-z]{0,3})?@)?(\\[[0-9a-f:]{0,6}\\]|[a-zé.]{0,8})(:[0-9]{0,5})?(/[a-z'%27é]{0,6}){0,3}(\\?[a-z=&'%27]{0,10})?(#[a-z?']{0,4})?",
            signature in ".*",
        ) {
            let _ = validate("token", &url, &[], None, &signature);
            let _ = validate("token", &url, &[], Some(b"{}"), &signature);
        }

        #[test]
        fn a_computed_signature_always_validates(
            token in ".*",
            url in ".*",
            params in proptest::collection::vec((".*", ".*"), 0..5),
        ) {
            let signature = compute(&token, &url, &params);
            prop_assert!(validate(&token, &url, &params, None, &signature));
        }

        #[test]
        fn a_signed_json_body_always_validates(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let url = format!("https://example.com/hook?bodySHA256={}", hex(&Sha256::digest(&body)));
            let signature = compute("t", &url, &[]);
            prop_assert!(validate("t", &url, &[], Some(&body), &signature));
        }
    }
}
