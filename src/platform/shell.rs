//! Text written into shell scripts and command lines, quoted in one place: provenance's
//! command lines, a sweep's jobs.txt, and Slurm job scripts (their shell lines and their
//! `#SBATCH` lines). Every word comes out on one line, so no line of a script is ever the
//! user's text as it stands; what cannot be quoted is refused.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;

/// `word` as one shell word on one line: as it is where every character is plain, in single
/// quotes where it holds no control character (a `'` inside written as `'\''`), else in
/// bash's `$'...'` with each control character escaped (a newline in single quotes would
/// split a script's line, or a jobs.txt command, in two).
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        Cow::Borrowed(word)
    } else if !word.chars().any(char::is_control) {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    } else {
        Cow::Owned(ansi_c(word.as_bytes()))
    }
}

/// A word that need not be UTF-8 (an argument, a path) as [`quote`] writes it; bytes that are
/// not UTF-8 are written as `\xHH` in `$'...'`, so the word reads back byte for byte.
pub fn quote_os(word: &OsStr) -> Cow<'_, str> {
    match word.to_str() {
        Some(text) => quote(text),
        None => Cow::Owned(ansi_c(word.as_bytes())),
    }
}

/// `bytes` in bash's `$'...'`: `\` and `'` escaped, control characters and bytes that are not
/// UTF-8 as `\n`, `\t`, `\r` or `\xHH`.
fn ansi_c(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                '\n' => out.push_str(r"\n"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                c if c.is_control() => {
                    let mut utf8 = [0; 4];
                    for byte in c.encode_utf8(&mut utf8).bytes() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('\'');
    out
}

/// `words` as one line a POSIX shell splits back into them.
pub fn words(words: impl IntoIterator<Item = String>) -> String {
    words
        .into_iter()
        .map(|word| quote(&word).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`words`] for words that need not be UTF-8 (`std::env::args_os`).
pub fn words_os(words: impl IntoIterator<Item = OsString>) -> String {
    words
        .into_iter()
        .map(|word| quote_os(&word).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A character a `#SBATCH` line cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unquotable(pub char);

impl fmt::Display for Unquotable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a #SBATCH line cannot hold the control character U+{:04X}",
            u32::from(self.0)
        )
    }
}

impl std::error::Error for Unquotable {}

/// `value` as one argument of a `#SBATCH` line, as sbatch reads it back: in double quotes,
/// `"` and `\` escaped with a backslash (sbatch's own rule; spaces, `'` and `#` stand as they
/// are inside the quotes). A line ends at a newline and sbatch has no escape for one, so a
/// control character is refused.
pub fn sbatch_word(value: &str) -> Result<String, Unquotable> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Unquotable(c));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

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

    /// What bash makes of `quoted` as the argument of printf.
    fn bash_reads(quoted: &str) -> Vec<u8> {
        let output = Command::new("bash")
            .args(["-c", &format!("printf '%s' {quoted}")])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{quoted}");
        output.stdout
    }

    #[test]
    fn control_characters_and_stray_bytes_stay_on_one_line_and_read_back() {
        let words: [&[u8]; 5] = [
            b"/tmp/a\ntouch /tmp/pwned\n#",
            b"tab\there, cr\r, bell\x07, del\x7f, it's \\n",
            "C1 \u{85} and é".as_bytes(),
            b"not utf-8 \xff\xfe end",
            b"'",
        ];
        for word in words {
            let quoted = quote_os(OsStr::from_bytes(word));
            assert!(!quoted.chars().any(char::is_control), "{quoted}");
            assert_eq!(bash_reads(&quoted), word, "{quoted}");
        }
        assert_eq!(quote("a\nb"), r"$'a\nb'");
        assert_eq!(quote_os(OsStr::from_bytes(b"\xff")), r"$'\xff'");
    }

    /// How sbatch reads the argument at the start of `line` (Slurm's `_get_argument` in
    /// src/sbatch/opt.c): quotes group, a backslash takes the next character as it is, an
    /// unquoted `#` starts a comment.
    fn sbatch_reads(line: &str) -> String {
        let (mut out, mut quote, mut escaped) = (String::new(), None, false);
        for c in line.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
                continue;
            } else if let Some(q) = quote {
                if c == q {
                    quote = None;
                    continue;
                }
            } else if c == '"' || c == '\'' {
                quote = Some(c);
                continue;
            } else if c == '#' || c.is_whitespace() {
                break;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn sbatch_words_read_back_and_control_characters_are_refused() -> Result<(), Unquotable> {
        for value in [
            "/plain/path",
            "/a b/c",
            r#"/q"u'o"te/#not a comment"#,
            r"/back\slash",
            "/per%%cent/é",
        ] {
            let word = sbatch_word(value)?;
            assert_eq!(sbatch_reads(&format!("{word} trailing")), value, "{word}");
        }
        assert_eq!(sbatch_word("/a\n#SBATCH --x"), Err(Unquotable('\n')));
        assert_eq!(
            Unquotable('\t').to_string(),
            "a #SBATCH line cannot hold the control character U+0009"
        );
        Ok(())
    }
}
