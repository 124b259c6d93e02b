//! Twilio Lookup v2 and Verify v2 wire types (protocols-more.md §9, §10): what switchboard
//! reads of their JSON answers, leniently (every field it does not need is ignored, and
//! every documented-nullable one may be `null`).

use serde::Deserialize;

/// `GET /v2/PhoneNumbers/{n}?Fields=line_type_intelligence` (200). An invalid number is
/// a 200 with `valid: false`, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumberLookup {
    /// E.164.
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub valid: Option<bool>,
    /// `TOO_SHORT`, `TOO_LONG`, `INVALID_BUT_POSSIBLE`, … or `null`.
    #[serde(default)]
    pub validation_errors: Option<Vec<String>>,
    /// `null` unless the package was requested (or could not be read).
    #[serde(default)]
    pub line_type_intelligence: Option<LineTypeIntelligence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineTypeIntelligence {
    /// `landline`, `mobile`, `fixedVoip`, `nonFixedVoip`, `personal`, `tollFree`,
    /// `premium`, `sharedCost`, `uan`, `voicemail`, `pager`, `unknown` (or `null`).
    #[serde(default, rename = "type")]
    pub line_type: Option<String>,
    #[serde(default)]
    pub carrier_name: Option<String>,
    /// A Twilio error code when the package failed for this number (e.g. 60601).
    #[serde(default)]
    pub error_code: Option<i64>,
}

/// A Verify v2 Verification or VerificationCheck (`201`). Decide by `status`, never by
/// the legacy `valid` or the HTTP status alone: a wrong code is reported as `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Verification {
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    /// `pending`, `approved`, `canceled`, `max_attempts_reached`, `deleted`, `failed`,
    /// `expired`.
    pub status: String,
}

/// Twilio's error body: `{"code", "message", "more_info", "status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TwilioError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_lookup_answers_read() {
        // protocols-more.md §9.2, the line-type-intelligence page's example.
        let ok: PhoneNumberLookup = serde_json::from_str(
            r#"{"calling_country_code":"1","country_code":"US","phone_number":"+14159929960","national_format":"(415) 992-9960",
 "valid":true,"validation_errors":null,"caller_name":null,"sim_swap":null,"call_forwarding":null,"line_status":null,
 "line_type_intelligence":{"error_code":null,"mobile_country_code":"240","mobile_network_code":"38",
   "carrier_name":"Twilio - SMS/MMS-SVR","type":"nonFixedVoip"},
 "identity_match":null,"reassigned_number":null,"sms_pumping_risk":null,"phone_number_quality_score":null,
 "pre_fill":null,"url":"https://lookups.twilio.com/v2/PhoneNumbers/+14159929960"}"#,
        )
        .expect("parses");
        assert_eq!(ok.valid, Some(true));
        let lti = ok.line_type_intelligence.expect("requested");
        assert_eq!(lti.line_type.as_deref(), Some("nonFixedVoip"));
        // §9.3: an invalid number is a 200 with `valid: false`.
        let invalid: PhoneNumberLookup = serde_json::from_str(
            r#"{"calling_country_code":null,"country_code":null,"phone_number":"+141599299600","national_format":null,
                "valid":false,"validation_errors":["TOO_LONG"],"line_type_intelligence":null}"#,
        )
        .expect("parses");
        assert_eq!(invalid.valid, Some(false));
        assert_eq!(invalid.validation_errors, Some(vec!["TOO_LONG".into()]));
    }

    #[test]
    fn the_documented_verify_answers_read() {
        let started: Verification = serde_json::from_str(
            r#"{"sid":"VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","service_sid":"VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","account_sid":"ACx",
 "to":"+15017122661","channel":"sms","status":"pending","valid":false,
 "date_created":"2015-07-30T20:00:00Z","date_updated":"2015-07-30T20:00:00Z","lookup":{},"amount":null,"payee":null,
 "send_code_attempts":[{"time":"2015-07-30T20:00:00Z","channel":"SMS","attempt_sid":"VLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}],
 "sna":null,"url":"https://verify.twilio.com/v2/Services/VA/Verifications/VE"}"#,
        )
        .expect("parses");
        assert_eq!(started.status, "pending");
        let error: TwilioError = serde_json::from_str(
            r#"{"code": 60200, "message": "Invalid parameter: To", "more_info": "https://www.twilio.com/docs/errors/60200", "status": 400}"#,
        )
        .expect("parses");
        assert_eq!(error.code, Some(60200));
    }
}
