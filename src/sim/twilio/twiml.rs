//! Reading the server's TwiML the way Twilio does for a bidirectional stream: find
//! `<Response><Connect><Stream url="…">` and its `<Parameter name value/>` children.
//!
//! A small XML reader for the handful of constructs TwiML uses (declaration, comments,
//! elements, double- or single-quoted attributes, the five predefined entities and character
//! references). It checks nesting, so a document of another shape is rejected rather than
//! matched by accident.

use std::collections::BTreeMap;

/// What the TwiML asks the simulated Twilio to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamTwiml {
    pub(super) url: String,
    pub(super) parameters: BTreeMap<String, String>,
}

/// Why a TwiML document could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TwimlError {
    #[error("malformed TwiML at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("malformed TwiML attribute: {0}")]
    Attribute(&'static str),
    #[error("TwiML root element is <{0}>, expected <Response>")]
    NotResponse(String),
    #[error("TwiML has no <Connect><Stream>")]
    NoStream,
    #[error("<Stream> has no url attribute")]
    NoUrl,
    #[error("TwiML has no <Record>")]
    NoRecord,
}

/// A `<Record>` (protocols-more.md §3.1): its attributes, as written, and the `<Say>`s
/// before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecordTwiml {
    pub(super) attributes: BTreeMap<String, String>,
    pub(super) said_before: Vec<String>,
}

const RECORD_ATTRIBUTES: [&str; 13] = [
    "action",
    "method",
    "timeout",
    "finishOnKey",
    "maxLength",
    "playBeep",
    "trim",
    "recordingStatusCallback",
    "recordingStatusCallbackMethod",
    "recordingStatusCallbackEvent",
    "transcribe",
    "transcribeCallback",
    "recordingConfigurationId",
];

/// Parses `xml` and extracts the first `<Record>`, a child of `<Response>` (it cannot be
/// nested, nor hold anything).
pub(super) fn parse_record(xml: &str) -> Result<RecordTwiml, TwimlError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found: Option<RecordTwiml> = None;
    let mut said = Vec::new();
    let mut root_seen = false;
    let mut reader = Reader { xml, pos: 0 };
    loop {
        let before = reader.pos;
        let Some(tag) = reader.next_tag()? else { break };
        if tag.kind == Kind::Close {
            if stack.pop() != Some(tag.name) {
                return Err(reader.malformed("mismatched closing tag"));
            }
            if tag.name == "Say" && found.is_none() {
                // The text of the `<Say>` just closed: from the end of its open tag (where the
                // reader stood) to this tag.
                if let Some(text) = xml.get(before..).and_then(|rest| rest.split('<').next()) {
                    said.push(unescape(text)?);
                }
            }
            continue;
        }
        if stack.is_empty() {
            if root_seen {
                return Err(reader.malformed("more than one root element"));
            }
            root_seen = true;
            if tag.name != "Response" {
                return Err(TwimlError::NotResponse(tag.name.to_owned()));
            }
        }
        if tag.name == "Record" {
            if stack.last().copied() != Some("Response") || tag.kind != Kind::Empty {
                return Err(reader.malformed("<Record> must be an empty child of <Response>"));
            }
            if found.is_none() {
                let mut attributes = BTreeMap::new();
                for name in RECORD_ATTRIBUTES {
                    if let Some(value) = attribute(tag.attrs, name)? {
                        attributes.insert(name.to_owned(), value);
                    }
                }
                found = Some(RecordTwiml {
                    attributes,
                    said_before: std::mem::take(&mut said),
                });
            }
        }
        if tag.kind == Kind::Open {
            stack.push(tag.name);
        }
    }
    if !stack.is_empty() {
        return Err(reader.malformed("unclosed element"));
    }
    if !root_seen {
        return Err(reader.malformed("no root element"));
    }
    found.ok_or(TwimlError::NoRecord)
}

/// Parses `xml` and extracts the first `<Connect><Stream>`.
pub(super) fn parse_stream(xml: &str) -> Result<StreamTwiml, TwimlError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found: Option<StreamTwiml> = None;
    // Depth of the <Stream> being read; parameters are its direct children.
    let mut stream_depth: Option<usize> = None;
    let mut root_seen = false;
    let mut reader = Reader { xml, pos: 0 };
    while let Some(tag) = reader.next_tag()? {
        match tag.kind {
            Kind::Close => {
                if stack.pop() != Some(tag.name) {
                    return Err(reader.malformed("mismatched closing tag"));
                }
                if stream_depth.is_some_and(|d| d > stack.len()) {
                    stream_depth = None;
                }
                continue;
            }
            Kind::Open | Kind::Empty => {}
        }
        if stack.is_empty() {
            if root_seen {
                return Err(reader.malformed("more than one root element"));
            }
            root_seen = true;
            if tag.name != "Response" {
                return Err(TwimlError::NotResponse(tag.name.to_owned()));
            }
        }
        let parent = stack.last().copied();
        match (parent, tag.name) {
            (Some("Connect"), "Stream") if found.is_none() => {
                let url = attribute(tag.attrs, "url")?.ok_or(TwimlError::NoUrl)?;
                found = Some(StreamTwiml {
                    url,
                    parameters: BTreeMap::new(),
                });
                if tag.kind == Kind::Open {
                    stream_depth = Some(stack.len() + 1);
                }
            }
            (Some("Stream"), "Parameter") if stream_depth == Some(stack.len()) => {
                if let (Some(stream), Some(name)) = (found.as_mut(), attribute(tag.attrs, "name")?)
                {
                    let value = attribute(tag.attrs, "value")?.unwrap_or_default();
                    stream.parameters.insert(name, value);
                }
            }
            _ => {}
        }
        if tag.kind == Kind::Open {
            stack.push(tag.name);
        }
    }
    if !stack.is_empty() {
        return Err(reader.malformed("unclosed element"));
    }
    if !root_seen {
        return Err(reader.malformed("no root element"));
    }
    found.ok_or(TwimlError::NoStream)
}

/// One element of a TwiML document, as Twilio reads it: name, attributes, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The element's own text (entities resolved), e.g. a `<Say>`'s words or a `<Dial>`'s number.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// The first direct child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The nouns of every `<Start>` verb named `noun` (`Transcription`, `Recording`, `Stream`).
    pub fn started(&self, noun: &str) -> Vec<&Element> {
        self.children
            .iter()
            .filter(|verb| verb.name == "Start")
            .flat_map(|start| start.children.iter().filter(|n| n.name == noun))
            .collect()
    }
}

/// Parses a whole TwiML document (checked as [`parse_stream`] checks it) into its
/// `<Response>` element, for flows other than a bidirectional stream: `<Start>` nouns,
/// `<Say>`, `<Play>`, `<Gather>`, `<Dial>`, `<Hangup>`.
pub fn parse_document(xml: &str) -> Result<Element, TwimlError> {
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut reader = Reader { xml, pos: 0 };
    loop {
        let before = reader.pos;
        let Some(tag) = reader.next_tag()? else {
            break;
        };
        // Text between the previous tag and this one belongs to the open element.
        if let Some(open) = stack.last_mut() {
            let start = xml
                .get(before..)
                .and_then(|rest| rest.find('<'))
                .map(|i| before + i);
            if let Some(text) = start.and_then(|end| xml.get(before..end)) {
                let text = text.trim();
                if !text.is_empty() {
                    open.text.push_str(&unescape(text)?);
                }
            }
        }
        match tag.kind {
            Kind::Close => {
                let closed = stack
                    .pop()
                    .ok_or_else(|| reader.malformed("stray closing tag"))?;
                if closed.name != tag.name {
                    return Err(reader.malformed("mismatched closing tag"));
                }
                attach(&mut stack, &mut root, closed, &reader)?;
            }
            Kind::Open | Kind::Empty => {
                if stack.is_empty() && root.is_some() {
                    return Err(reader.malformed("more than one root element"));
                }
                let element = Element {
                    name: tag.name.to_owned(),
                    attributes: attributes(tag.attrs)?,
                    ..Element::default()
                };
                if tag.kind == Kind::Open {
                    stack.push(element);
                } else {
                    attach(&mut stack, &mut root, element, &reader)?;
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err(reader.malformed("unclosed element"));
    }
    let root = root.ok_or_else(|| reader.malformed("no root element"))?;
    if root.name != "Response" {
        return Err(TwimlError::NotResponse(root.name));
    }
    Ok(root)
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
    reader: &Reader<'_>,
) -> Result<(), TwimlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(reader.malformed("more than one root element")),
    }
    Ok(())
}

/// Every attribute of a tag's raw attribute text, unescaped.
fn attributes(attrs: &str) -> Result<BTreeMap<String, String>, TwimlError> {
    let bad = TwimlError::Attribute;
    let mut out = BTreeMap::new();
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or(bad("attribute without value"))?;
        let name = rest[..eq].trim_end();
        let after = rest[eq + 1..].trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\''))
            .ok_or(bad("unquoted attribute value"))?;
        let body = &after[1..];
        let close = body
            .find(quote)
            .ok_or(bad("unterminated attribute value"))?;
        out.insert(name.to_owned(), unescape(&body[..close])?);
        rest = body[close + 1..].trim_start();
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Empty,
}

#[derive(Debug)]
struct Tag<'a> {
    name: &'a str,
    /// The raw attribute text between the name and `>` / `/>`.
    attrs: &'a str,
    kind: Kind,
}

struct Reader<'a> {
    xml: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: &'static str) -> TwimlError {
        TwimlError::Malformed { at: self.pos, what }
    }

    /// The next element tag, skipping text, the XML declaration, comments, CDATA and
    /// doctype; `None` at the end of the document.
    fn next_tag(&mut self) -> Result<Option<Tag<'a>>, TwimlError> {
        loop {
            let rest = self.xml.get(self.pos..).unwrap_or_default();
            let Some(lt) = rest.find('<') else {
                self.pos = self.xml.len();
                return Ok(None);
            };
            self.pos += lt;
            let rest = &rest[lt..];
            let skip_to = |end: &str| rest.find(end).map(|i| i + end.len());
            let skipped = if rest.starts_with("<?") {
                Some(skip_to("?>"))
            } else if rest.starts_with("<!--") {
                Some(skip_to("-->"))
            } else if rest.starts_with("<![CDATA[") {
                Some(skip_to("]]>"))
            } else if rest.starts_with("<!") {
                Some(skip_to(">"))
            } else {
                None
            };
            match skipped {
                Some(Some(len)) => self.pos += len,
                Some(None) => return Err(self.malformed("unterminated markup")),
                None => return self.element(rest).map(Some),
            }
        }
    }

    /// Reads the element tag at the start of `rest` (which begins with `<`).
    fn element(&mut self, rest: &'a str) -> Result<Tag<'a>, TwimlError> {
        let end = tag_end(rest).ok_or_else(|| self.malformed("unterminated tag"))?;
        let inner = &rest[1..end];
        self.pos += end + 1;
        let (kind, inner) = if let Some(name) = inner.strip_prefix('/') {
            (Kind::Close, name.trim_end())
        } else if let Some(body) = inner.strip_suffix('/') {
            (Kind::Empty, body)
        } else {
            (Kind::Open, inner)
        };
        let name_len = inner
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(inner.len());
        let (name, attrs) = inner.split_at(name_len);
        if name.is_empty() || (kind == Kind::Close && !attrs.is_empty()) {
            return Err(self.malformed("bad tag"));
        }
        Ok(Tag { name, attrs, kind })
    }
}

/// Index of the `>` closing the tag at the start of `s`, ignoring `>` inside quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The unescaped value of attribute `wanted` in a tag's raw attribute text.
fn attribute(attrs: &str, wanted: &str) -> Result<Option<String>, TwimlError> {
    Ok(attributes(attrs)?.remove(wanted))
}

/// Resolves the predefined entities and numeric character references.
fn unescape(raw: &str) -> Result<String, TwimlError> {
    let bad = || TwimlError::Attribute("bad entity in value");
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or_else(bad)?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(bad)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_url_and_parameters_from_helper_library_layout() {
        // One line, no whitespace, declaration first: how the helper libraries render it.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="https://x.test/twilio/voice/next"><Stream url="wss://x.test/twilio/media"><Parameter name="From" value="+15551230000"/><Parameter name="Agent" value="triage"/></Stream></Connect></Response>"#;
        let s = parse_stream(xml).unwrap();
        assert_eq!(s.url, "wss://x.test/twilio/media");
        assert_eq!(s.parameters.len(), 2);
        assert_eq!(s.parameters["From"], "+15551230000");
        assert_eq!(s.parameters["Agent"], "triage");
    }

    #[test]
    fn handles_pretty_printing_comments_quotes_and_entities() {
        let xml = r#"<?xml version="1.0"?>
<!-- greeting first -->
<Response>
  <Say voice="alice">Hello &amp; welcome &lt;3</Say>
  <Pause length="1" />
  <Connect>
    <Stream
        name='main'
        url = "ws://127.0.0.1:8080/twilio/media" >
      <Parameter value="a&quot;b&#10;c&#x41;" name="Quoted"></Parameter>
      <Parameter name='Tag' value='x>y' />
    </Stream>
  </Connect>
</Response>
"#;
        let s = parse_stream(xml).unwrap();
        assert_eq!(s.url, "ws://127.0.0.1:8080/twilio/media");
        assert_eq!(s.parameters["Quoted"], "a\"b\ncA");
        assert_eq!(s.parameters["Tag"], "x>y");
    }

    #[test]
    fn ignores_streams_and_parameters_outside_connect() {
        let xml = r#"<Response><Start><Stream url="wss://fork.test/"><Parameter name="no" value="1"/></Stream></Start><Connect><Stream url="wss://bi.test/"/></Connect><Parameter name="stray" value="2"/><Start><Stream url="wss://late/"><Parameter name="late" value="3"/></Stream></Start></Response>"#;
        let s = parse_stream(xml).unwrap();
        assert_eq!(s.url, "wss://bi.test/");
        assert!(s.parameters.is_empty());
    }

    #[test]
    fn only_direct_children_of_the_stream_are_parameters() {
        let xml = r#"<Response><Connect><Stream url="wss://a/"><Other><Parameter name="deep" value="1"/></Other><Parameter name="ok" value="2"/></Stream></Connect></Response>"#;
        let s = parse_stream(xml).unwrap();
        assert_eq!(s.parameters.keys().collect::<Vec<_>>(), ["ok"]);
    }

    #[test]
    fn rejects_documents_without_a_bidirectional_stream() {
        let relay =
            r#"<Response><Connect><ConversationRelay url="wss://a/relay"/></Connect></Response>"#;
        assert_eq!(parse_stream(relay), Err(TwimlError::NoStream));
        assert_eq!(
            parse_stream("<Response/>"),
            Err(TwimlError::NoStream),
            "an empty response"
        );
        assert_eq!(
            parse_stream(r#"<Response><Connect><Stream name="x"/></Connect></Response>"#),
            Err(TwimlError::NoUrl)
        );
        assert_eq!(
            parse_stream(r#"<Reply><Connect><Stream url="wss://a/"/></Connect></Reply>"#),
            Err(TwimlError::NotResponse("Reply".into()))
        );
    }

    #[test]
    fn rejects_malformed_xml() {
        for xml in [
            "",
            "<Response><Connect></Response>",
            "<Response><Connect>",
            "<Response",
            r#"<Response><Connect><Stream url="wss://a/></Connect></Response>"#,
            "<Response/><Response/>",
            "<!-- unterminated",
        ] {
            assert!(
                matches!(parse_stream(xml), Err(TwimlError::Malformed { .. })),
                "{xml:?} should be malformed, got {:?}",
                parse_stream(xml)
            );
        }
        for xml in [
            r#"<Response><Connect><Stream url=wss://a/ /></Connect></Response>"#,
            r#"<Response><Connect><Stream url="wss://a/&bogus;"/></Connect></Response>"#,
            r#"<Response><Connect><Stream url="wss://a/&amp"/></Connect></Response>"#,
            r#"<Response><Connect><Stream url/></Connect></Response>"#,
        ] {
            assert!(
                matches!(parse_stream(xml), Err(TwimlError::Attribute(_))),
                "{xml:?} should have a bad attribute, got {:?}",
                parse_stream(xml)
            );
        }
    }

    #[test]
    fn reads_a_whole_document_with_start_nouns_a_gather_and_text() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Start><Transcription statusCallbackUrl="https://x/t?a=1&amp;b=2" track="both_tracks"/></Start><Start><Recording channels="dual"/></Start><Say>We record &amp; transcribe.</Say><Gather numDigits="1" action="https://x/menu"><Say>Press 1</Say></Gather></Response>"#;
        let doc = parse_document(xml).unwrap();
        let transcription = doc.started("Transcription");
        assert_eq!(transcription.len(), 1);
        assert_eq!(
            transcription[0].attr("statusCallbackUrl"),
            Some("https://x/t?a=1&b=2")
        );
        assert_eq!(doc.started("Recording")[0].attr("channels"), Some("dual"));
        assert_eq!(doc.child("Say").unwrap().text, "We record & transcribe.");
        let gather = doc.child("Gather").unwrap();
        assert_eq!(gather.attr("action"), Some("https://x/menu"));
        assert_eq!(gather.child("Say").unwrap().text, "Press 1");
        assert!(matches!(
            parse_document("<Response><Say></Response>"),
            Err(TwimlError::Malformed { .. })
        ));
        assert_eq!(
            parse_document("<Reply/>"),
            Err(TwimlError::NotResponse("Reply".into()))
        );
    }

    #[test]
    fn a_record_is_read_with_its_prompt() {
        let xml = r#"<?xml version="1.0"?><Response><Say>Leave it &amp; go.</Say><Record action="https://x/done" transcribe="true" transcribeCallback="https://x/tr" maxLength="60"/></Response>"#;
        let record = parse_record(xml).unwrap();
        assert_eq!(record.said_before, ["Leave it & go."]);
        assert_eq!(record.attributes["action"], "https://x/done");
        assert_eq!(record.attributes["transcribe"], "true");
        assert_eq!(record.attributes["maxLength"], "60");
        assert_eq!(
            parse_record("<Response><Say>Hi</Say></Response>"),
            Err(TwimlError::NoRecord)
        );
        assert!(parse_record("<Response><Dial><Record/></Dial></Response>").is_err());
    }
}
