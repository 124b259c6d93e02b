//! Text-message addressing and limits (twilio-protocols.md §4.4).

/// Twilio's `Body` limit on every channel, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// Splits a reply into bodies of at most `max` characters, at whitespace when one is
/// near, so no message is refused for length and words stay whole.
pub fn split_body(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= max {
            parts.push(rest.to_string());
            break;
        }
        // Byte offset of the character just past the limit.
        let hard = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let head = &rest[..hard];
        // Prefer the last whitespace in the second half of the window.
        let cut = head
            .char_indices()
            .rev()
            .find(|&(i, c)| c.is_whitespace() && i >= hard / 2)
            .map_or(hard, |(i, _)| i);
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_body() {
        assert_eq!(split_body("  hello  ", 1600), vec!["hello"]);
        assert!(split_body("   ", 1600).is_empty());
    }

    #[test]
    fn long_text_splits_at_spaces_within_the_limit() {
        let text = "word ".repeat(1000);
        let parts = split_body(&text, MAX_BODY_CHARS);
        assert!(parts.len() >= 4);
        for part in &parts {
            assert!(part.chars().count() <= MAX_BODY_CHARS);
            assert!(!part.starts_with(' ') && !part.ends_with(' '));
            assert!(part.split(' ').all(|w| w == "word"), "{part}");
        }
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn text_without_spaces_and_multibyte_text_split_safely() {
        let text = "é".repeat(3500);
        let parts = split_body(&text, MAX_BODY_CHARS);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_BODY_CHARS));
        assert_eq!(parts.concat(), text);
    }
}
