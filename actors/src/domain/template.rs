//! Reply templates of the offline `local` model (SPEC §6.4): a tool's JSON result
//! turned into a sentence, e.g. `"Order {order_id} is {status}."`.
//!
//! Syntax: `{path}` is replaced by the value at `path` in the result, where `path`
//! is dot-separated object keys or array indices (`items.0.name`). A key applied
//! to an array maps over its elements, so `{products.name}` lists every product's
//! name. Arrays render as `a, b and c`; strings as-is; numbers and booleans as
//! JSON; `null`, objects and missing paths render empty. `{{` and `}}` are
//! literal braces.

use serde_json::Value;

/// Checks the syntax and returns the placeholder paths, for config validation.
pub fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut paths = Vec::new();
    for piece in pieces(template) {
        if let Piece::Path(path) = piece? {
            paths.push(path);
        }
    }
    Ok(paths)
}

/// Fills `template` from `result`. A template that does not parse renders
/// as-is, so a bad template is visible rather than silent (config validation
/// rejects them anyway).
pub fn render(template: &str, result: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Ok(Piece::Text(text)) => out.push_str(text),
            Ok(Piece::Path(path)) => render_value(&lookup(result, path), &mut out),
            Err(_) => return template.to_owned(),
        }
    }
    out
}

enum Piece<'a> {
    Text(&'a str),
    Path(&'a str),
}

/// Splits a template into literal text and placeholder paths.
fn pieces(template: &str) -> impl Iterator<Item = Result<Piece<'_>, String>> {
    let mut rest = template;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(at) = rest.find(['{', '}']) else {
            let text = rest;
            rest = "";
            return Some(Ok(Piece::Text(text)));
        };
        if at > 0 {
            let (text, tail) = rest.split_at_checked(at)?;
            rest = tail;
            return Some(Ok(Piece::Text(text)));
        }
        for (escape, literal) in [("{{", "{"), ("}}", "}")] {
            if let Some(tail) = rest.strip_prefix(escape) {
                rest = tail;
                return Some(Ok(Piece::Text(literal)));
            }
        }
        let Some(body) = rest.strip_prefix('{') else {
            rest = "";
            return Some(Err("a `}` without its `{` (write `}}` for a brace)".into()));
        };
        let Some((path, tail)) = body.split_once('}') else {
            rest = "";
            return Some(Err("a `{` is never closed (write `{{` for a brace)".into()));
        };
        rest = tail;
        let valid = !path.is_empty()
            && path.split('.').all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        Some(if valid {
            Ok(Piece::Path(path))
        } else {
            rest = "";
            Err(format!("`{{{path}}}` is not a path like `items.0.name`"))
        })
    })
}

/// The value at `path`; a key applied to an array maps over its elements.
fn lookup(value: &Value, path: &str) -> Value {
    let mut current = value.clone();
    for segment in path.split('.') {
        current = step(&current, segment);
    }
    current
}

fn step(value: &Value, segment: &str) -> Value {
    match value {
        Value::Object(map) => map.get(segment).cloned().unwrap_or(Value::Null),
        Value::Array(items) => match segment.parse::<usize>() {
            Ok(index) => items.get(index).cloned().unwrap_or(Value::Null),
            Err(_) => Value::Array(
                items
                    .iter()
                    .map(|item| step(item, segment))
                    .filter(|v| !v.is_null())
                    .collect(),
            ),
        },
        _ => Value::Null,
    }
}

fn render_value(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Object(_) => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::Array(items) => {
            let rendered: Vec<String> = items
                .iter()
                .map(|item| {
                    let mut s = String::new();
                    render_value(item, &mut s);
                    s
                })
                .filter(|s| !s.is_empty())
                .collect();
            out.push_str(&and_list(&rendered));
        }
    }
}

/// `a`, `a and b`, `a, b and c`: how lists are read out.
pub fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.as_ref().to_owned(),
        Some((last, init)) => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_paths_and_maps_over_arrays() {
        let result = json!({
            "order_id": "1001", "status": "shipped", "count": 2, "gift": false,
            "items": [{"name": "Helmet"}, {"name": "Lights"}, {"name": "Lock"}],
        });
        assert_eq!(
            render("Order {order_id} is {status}: {items.name}.", &result),
            "Order 1001 is shipped: Helmet, Lights and Lock."
        );
        assert_eq!(
            render("{items.1.name} {count} {gift}", &result),
            "Lights 2 false"
        );
        assert_eq!(
            render("[{missing}] [{items.9.name}] [{status.x}]", &result),
            "[] [] []"
        );
        assert_eq!(render("{{literal}} }}", &result), "{literal} }");
    }

    #[test]
    fn placeholders_are_checked() {
        assert_eq!(placeholders("a {x.y} b {z}").unwrap(), vec!["x.y", "z"]);
        assert!(placeholders("plain text").unwrap().is_empty());
        for bad in ["{", "}", "a {x", "{}", "{x..y}", "{x y}", "{ x}"] {
            assert!(placeholders(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_template_renders_verbatim() {
        assert_eq!(render("oops {x", &json!({"x": 1})), "oops {x");
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(
            render("Très {a} — ok", &json!({"a": "bien"})),
            "Très bien — ok"
        );
    }
}
