//! Twilio Lookup v2 and Verify v2 as the fake REST server answers them, at their exact
//! paths (protocols-more.md §9, §10), with HTTP basic auth checked like Twilio: a request
//! with other credentials gets `401` and error 20003, as Twilio answers.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::HttpResponse;
use serde_json::json;

use super::RestCall;

/// What the fake knows: the account's credentials, the Verify Service, the line type of
/// some numbers (any other is `mobile`), numbers whose Lookup fails (`500`), and the code
/// every verification sends.
pub struct FakeIdentity {
    pub account_sid: String,
    pub auth_token: String,
    pub verify_service: String,
    pub lines: HashMap<String, String>,
    pub failing: Vec<String>,
    pub code: String,
    /// Numbers a code was sent to and not yet approved.
    pending: Mutex<Vec<String>>,
}

impl FakeIdentity {
    pub fn new(account_sid: &str, auth_token: &str, verify_service: &str) -> FakeIdentity {
        FakeIdentity {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            verify_service: verify_service.into(),
            lines: HashMap::new(),
            failing: Vec::new(),
            code: "123456".into(),
            pending: Mutex::new(Vec::new()),
        }
    }

    pub fn line(mut self, number: &str, line_type: &str) -> Self {
        self.lines.insert(number.into(), line_type.into());
        self
    }

    pub fn failing(mut self, number: &str) -> Self {
        self.failing.push(number.into());
        self
    }

    /// The answer to a Lookup or Verify request, `None` for any other path.
    pub fn answer(&self, call: &RestCall) -> Option<HttpResponse> {
        let lookup = call.path.strip_prefix("/v2/PhoneNumbers/");
        let verify = call
            .path
            .strip_prefix("/v2/Services/")
            .and_then(|rest| rest.split_once('/'));
        if lookup.is_none() && verify.is_none() {
            return None;
        }
        if !self.authorized(call) {
            return Some(error(401, 20003, "Authenticate"));
        }
        if let Some(number) = lookup {
            return Some(self.lookup(call, number));
        }
        let (service, resource) = verify?;
        if call.method != "POST" {
            return Some(error(405, 20004, "Method not allowed"));
        }
        if service != self.verify_service {
            return Some(error(404, 20404, "The requested resource was not found"));
        }
        Some(match resource {
            "Verifications" => self.start(call),
            "VerificationCheck" => self.check(call),
            _ => error(404, 20404, "The requested resource was not found"),
        })
    }

    fn authorized(&self, call: &RestCall) -> bool {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.account_sid, self.auth_token))
        );
        call.authorization.as_deref() == Some(expected.as_str())
    }

    fn lookup(&self, call: &RestCall, segment: &str) -> HttpResponse {
        if call.method != "GET" {
            return error(405, 20004, "Method not allowed");
        }
        // The `+` must come percent-encoded (a raw `+` in a path is a `+`, but a query
        // decoder would make it a space: the docs encode it).
        let Some(digits) = segment.strip_prefix("%2B") else {
            return error(404, 20404, "The requested resource was not found");
        };
        let number = format!("+{digits}");
        if self.failing.contains(&number) {
            return error(500, 20500, "Internal Server Error");
        }
        let with_lti = call
            .query
            .split('&')
            .any(|pair| pair == "Fields=line_type_intelligence");
        let line_type = self
            .lines
            .get(&number)
            .cloned()
            .unwrap_or_else(|| "mobile".into());
        let lti = with_lti.then(|| {
            json!({"error_code": null, "mobile_country_code": null, "mobile_network_code": null,
                   "carrier_name": "Fake Carrier", "type": line_type})
        });
        HttpResponse::Ok().json(json!({
            "calling_country_code": "1", "country_code": "US", "phone_number": number,
            "national_format": null, "valid": true, "validation_errors": null,
            "caller_name": null, "sim_swap": null, "call_forwarding": null, "line_status": null,
            "line_type_intelligence": lti, "identity_match": null, "reassigned_number": null,
            "sms_pumping_risk": null, "phone_number_quality_score": null, "pre_fill": null,
            "url": format!("https://lookups.twilio.com/v2/PhoneNumbers/{number}"),
        }))
    }

    fn start(&self, call: &RestCall) -> HttpResponse {
        let to = call.field("To").unwrap_or_default();
        if !actors::domain::phone::is_e164(to) {
            return error(400, 60200, "Invalid parameter: To");
        }
        let channel = call.field("Channel").unwrap_or_default();
        if !["sms", "call", "whatsapp", "email", "sna", "auto"].contains(&channel) {
            return error(400, 60200, "Invalid parameter: Channel");
        }
        self.pending.lock().expect("lock").push(to.to_owned());
        HttpResponse::Created().json(self.verification(to, channel, "pending"))
    }

    fn check(&self, call: &RestCall) -> HttpResponse {
        let (Some(to), Some(code)) = (call.field("To"), call.field("Code")) else {
            return error(
                400,
                60221,
                "Either a To or VerificationSid must be specified",
            );
        };
        if !(4..=10).contains(&code.len()) {
            return error(400, 60200, "Invalid parameter: Code");
        }
        let mut pending = self.pending.lock().expect("lock");
        let Some(index) = pending.iter().position(|p| p == to) else {
            return error(404, 20404, "The requested resource was not found");
        };
        if code != self.code {
            // A wrong code: `pending`, with a success status.
            return HttpResponse::Created().json(self.verification(to, "sms", "pending"));
        }
        pending.remove(index);
        HttpResponse::Created().json(self.verification(to, "sms", "approved"))
    }

    fn verification(&self, to: &str, channel: &str, status: &str) -> serde_json::Value {
        json!({
            "sid": "VE00000000000000000000000000000001", "service_sid": self.verify_service,
            "account_sid": self.account_sid, "to": to, "channel": channel, "status": status,
            "valid": status == "approved", "date_created": "2026-12-05T11:00:00Z",
            "date_updated": "2026-12-05T11:00:00Z", "lookup": {}, "amount": null, "payee": null,
        })
    }
}

fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a status code");
    HttpResponse::build(status).json(json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    }))
}
