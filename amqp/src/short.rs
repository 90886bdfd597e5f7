//! Short strings built without panicking. amq-protocol's `From<&str>` for `ShortString` panics
//! past 255 bytes, and much of what Warren puts in a short string grows with what a peer sent
//! (reply texts naming a queue, names read back from the store). RabbitMQ cuts a reply text
//! that is too long to 252 bytes and appends "..."; every short string Warren builds from text
//! goes through here and does the same.

use amq_protocol::types::ShortString;

/// The most bytes a short string holds on the wire.
pub const MAX_SHORT: usize = 255;

/// What marks a text that was cut, as RabbitMQ marks it.
const ELLIPSIS: &str = "...";

/// `text` as a short string; past 255 bytes it is cut on a UTF-8 character boundary and ends
/// in "...", so it still fits in 255.
pub fn short_string(text: &str) -> ShortString {
    if text.len() <= MAX_SHORT {
        return ShortString::try_new(text).unwrap_or_default();
    }
    let mut cut = String::with_capacity(MAX_SHORT);
    cut.push_str(truncate(text, MAX_SHORT - ELLIPSIS.len()));
    cut.push_str(ELLIPSIS);
    ShortString::try_new(cut).unwrap_or_default()
}

/// The longest prefix of `text` that fits in `max` bytes without splitting a character.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(
            short_string("NOT_FOUND - no queue 'q'").as_str(),
            "NOT_FOUND - no queue 'q'"
        );
        let exact = "a".repeat(255);
        assert_eq!(short_string(&exact).as_str(), exact);
    }

    #[test]
    fn long_text_is_cut_to_255_bytes_ending_in_an_ellipsis() {
        let long = "b".repeat(1000);
        let cut = short_string(&long);
        assert_eq!(cut.as_str().len(), 255);
        assert_eq!(cut.as_str(), format!("{}...", "b".repeat(252)));
        assert_eq!(short_string(&"c".repeat(256)).as_str().len(), 255);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 'é' is two bytes: 251 of 'a' then 'é' would end at byte 253, past the 252 kept.
        let text = format!("{}é tail", "a".repeat(251));
        assert_eq!(
            short_string(&text).as_str(),
            format!("{}...", "a".repeat(251))
        );
        let euro = "€".repeat(100); // three bytes each: 84 of them fill 252
        assert_eq!(short_string(&euro).as_str().len(), 255);
        let emoji = "🐇".repeat(100); // four bytes each: 63 of them fill 252
        assert_eq!(short_string(&emoji).as_str().len(), 255);
        let mixed = format!("a{}", "🐇".repeat(100)); // 1 + 62 * 4 = 249 bytes kept
        assert_eq!(short_string(&mixed).as_str().len(), 252);
    }
}
