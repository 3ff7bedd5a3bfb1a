//! Finding the line of a dotted key in the original YAML text.
//!
//! Once the file is a `serde_yaml::Value` its positions are gone, and serde_yaml
//! exposes no parse events. It does, however, stamp every error raised while
//! deserializing a node with that node's position. So we walk the text with a
//! deserializer that follows the key path and raises a marker error on the
//! wanted key: the error's location is the key's line, found by the YAML
//! parser itself (flow mappings, quoted keys and comments included).

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

/// The marker raised on the wanted key; any other error means "not found".
const FOUND: &str = "qnet-config-key-found";

/// The 1-based line of the key at `path` in `text`, or `None` when the text
/// does not contain that key (or `path` is empty).
pub(super) fn line_of_key(text: &str, path: &[String]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let seeker = KeySeeker { path };
    match seeker.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(err) if err.to_string().contains(FOUND) => err.location().map(|at| at.line()),
        _ => None,
    }
}

/// Walks one mapping level, descending into the value of `path[0]`.
struct KeySeeker<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for KeySeeker<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeeker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((wanted, rest)) = self.path.split_first() else {
            return Ok(());
        };
        let matcher = || KeyMatcher {
            wanted,
            last: rest.is_empty(),
        };
        // Every entry is consumed, so a miss leaves the deserializer in a
        // consistent state; a hit on the last segment returns the marker error.
        while let Some(matched) = map.next_key_seed(matcher())? {
            if matched {
                map.next_value_seed(KeySeeker { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Compares one mapping key with the wanted segment.
struct KeyMatcher<'p> {
    wanted: &'p str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeyMatcher<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // serde_yaml hands any scalar key to a string visitor as its text.
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyMatcher<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (matched, _) => Ok(matched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, dotted: &str) -> Option<usize> {
        let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
        line_of_key(text, &path)
    }

    const NESTED: &str = "\
# a comment
experiment: x
network:
  hidden: [1, 2]   # hidden here too
  init: torch
agent:
  gamma: 0.9
  hidden: 3
";

    #[test]
    fn finds_nested_keys_by_full_path() {
        assert_eq!(line(NESTED, "experiment"), Some(2));
        assert_eq!(line(NESTED, "network"), Some(3));
        assert_eq!(line(NESTED, "network.hidden"), Some(4));
        assert_eq!(line(NESTED, "agent.hidden"), Some(8));
        assert_eq!(line(NESTED, "agent.gamma"), Some(7));
    }

    #[test]
    fn misses_are_none() {
        assert_eq!(line(NESTED, "hidden"), None);
        assert_eq!(line(NESTED, "agent.tau"), None);
        assert_eq!(line(NESTED, "experiment.x"), None);
        assert_eq!(line_of_key(NESTED, &[]), None);
        assert_eq!(line("- a\n- b\n", "a"), None);
    }

    #[test]
    fn handles_flow_mappings_and_quoted_keys() {
        let text = "agent: {gamma: 1,\n  \"tau\": 2}\n'seed': 4\n";
        assert_eq!(line(text, "agent.tau"), Some(2));
        assert_eq!(line(text, "seed"), Some(3));
    }
}
