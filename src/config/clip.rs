//! User values quoted in messages, cut to a readable length: a `--set` or `--grid` argument
//! can hold a list of millions of entries, and an error quoting it whole would bury the
//! line that says what is wrong.

use std::borrow::Cow;

/// Characters of a value an error message quotes before cutting it.
const SHOWN_CHARS: usize = 200;

/// `text` as an error message quotes it: whole up to 200 characters (`SHOWN_CHARS`), else its
/// start followed by `... (N more characters)`.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => {
            let more = text[cut..].chars().count();
            Cow::Owned(format!("{}... ({more} more characters)", &text[..cut]))
        }
    }
}

/// A message that quotes a value in its middle and says what is wrong at its end (serde's
/// "unknown variant `...`, expected ..."), cut in the middle when long: its first 200
/// characters and its last 100 stay.
pub fn clip_middle(text: &str) -> Cow<'_, str> {
    let chars = text.chars().count();
    let tail = SHOWN_CHARS / 2;
    if chars <= SHOWN_CHARS + tail {
        return Cow::Borrowed(text);
    }
    let head: String = text.chars().take(SHOWN_CHARS).collect();
    let end: String = text.chars().skip(chars - tail).collect();
    let cut = chars - SHOWN_CHARS - tail;
    Cow::Owned(format!("{head}... ({cut} characters cut) ...{end}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_keeps_its_start_and_its_end() {
        assert_eq!(clip_middle("unknown variant `x`"), "unknown variant `x`");
        let long = format!(
            "unknown variant `{}`, expected `a` or `b`",
            "y".repeat(100_000)
        );
        let shown = clip_middle(&long);
        assert!(shown.len() < 400, "{shown}");
        assert!(shown.starts_with("unknown variant `yyy"), "{shown}");
        assert!(shown.contains("... (99739 characters cut) ..."), "{shown}");
        assert!(shown.ends_with("yyy`, expected `a` or `b`"), "{shown}");
    }

    #[test]
    fn short_values_are_whole_and_long_ones_cut_on_a_character() {
        assert_eq!(clip("agent.gamma=0.9"), "agent.gamma=0.9");
        let exact = "x".repeat(SHOWN_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = format!("{}{}", "é".repeat(SHOWN_CHARS), "1,".repeat(1_000_000));
        let shown = clip(&long);
        assert_eq!(
            shown,
            format!("{}... (2000000 more characters)", "é".repeat(SHOWN_CHARS))
        );
    }
}
