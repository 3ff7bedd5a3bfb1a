//! Words as a POSIX shell reads them back, quoted in one place: provenance's command lines,
//! a sweep's jobs.txt and Slurm job scripts.

use std::borrow::Cow;

/// `word` as one shell word: as it is where every character is plain, else in single quotes
/// (a `'` inside written as `'\''`).
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// `words` as one line a POSIX shell splits back into them.
pub fn words(words: impl IntoIterator<Item = String>) -> String {
    words
        .into_iter()
        .map(|word| quote(&word).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_back_as_they_were() {
        let line = [
            "qnet",
            "train",
            "--set",
            "network.hidden=[64,64]",
            "--out",
            "my run's",
        ];
        assert_eq!(
            words(line.map(str::to_owned)),
            r"qnet train --set 'network.hidden=[64,64]' --out 'my run'\''s'"
        );
        assert_eq!(words([String::new()]), "''");
        assert_eq!(quote("/opt/qnet/bin/qnet"), "/opt/qnet/bin/qnet");
    }
}
