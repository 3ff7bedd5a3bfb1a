//! The raw layer: YAML trees merged over the defaults, remembering where each
//! value came from (ripgrep's `LowArgs`: nothing here is validated beyond shape).
//!
//! The defaults, serialized, are both the starting values and the schema: a
//! mapping there is a section whose keys are the only keys allowed, anything
//! else is a leaf that a file or `--set` may replace.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::locate::line_of_key;
use super::{clip, clip_middle};

/// Where a leaf's current value came from.
#[derive(Debug, Clone)]
enum Origin {
    /// The config file (its line is looked up only when an error needs it).
    File,
    /// A `--set KEY=VALUE` argument as messages quote it (cut when long).
    Set(String),
}

/// A shape error at a key path, before it is given a file/line or `--set` label.
struct Problem {
    path: Vec<String>,
    message: String,
}

/// Defaults with the file and the overrides merged over them.
pub(super) struct RawTree<'a> {
    merged: Value,
    origins: HashMap<String, Origin>,
    source: &'a str,
    text: &'a str,
}

impl<'a> RawTree<'a> {
    /// Starts from `defaults`; `text` is the file named `source` in messages.
    pub(super) fn new(defaults: Value, source: &'a str, text: &'a str) -> Self {
        RawTree {
            merged: defaults,
            origins: HashMap::new(),
            source,
            text,
        }
    }

    /// Parses the file text and merges it over the defaults.
    pub(super) fn merge_file(&mut self) -> Result<()> {
        let file: Value = serde_yaml::from_str(self.text).map_err(|err| {
            let at = match err.location() {
                Some(at) => format!("{}:{}", self.source, at.line()),
                None => self.source.to_owned(),
            };
            anyhow!("{at}: malformed YAML: {err}")
        })?;
        merge(
            &mut self.merged,
            file,
            &mut Vec::new(),
            &Origin::File,
            &mut self.origins,
        )
        .map_err(|problem| {
            let at = self.file_position(&problem.path);
            anyhow!("{at}: {}", problem.message)
        })
    }

    /// Applies one `--set KEY=VALUE`, VALUE parsed as YAML, over what is there.
    pub(super) fn apply_override(&mut self, arg: &str) -> Result<()> {
        let shown = clip(arg);
        let Some((key, text)) = arg.split_once('=') else {
            bail!("--set {shown}: expected KEY=VALUE, e.g. agent.gamma=0.9 (no '=' found)");
        };
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            bail!(
                "--set {shown}: '{}' is not a dotted key such as agent.gamma",
                clip(key)
            );
        }
        let value: Value = serde_yaml::from_str(text)
            .with_context(|| format!("--set {shown}: the value is not valid YAML"))?;
        // Nest the value under its key path so that `--set` goes through the same
        // schema checks as the file: unknown keys, mappings where leaves belong.
        let nested = path.iter().rev().fold(value, |inner, segment| {
            let mut section = Mapping::new();
            section.insert(Value::String(segment.clone()), inner);
            Value::Mapping(section)
        });
        let origin = Origin::Set(shown.clone().into_owned());
        merge(
            &mut self.merged,
            nested,
            &mut Vec::new(),
            &origin,
            &mut self.origins,
        )
        .map_err(|problem| anyhow!("--set {shown}: {}", problem.message))
    }

    /// The value at dotted `key`, typed; a type error names the key and its origin.
    pub(super) fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let value = key
            .split('.')
            .try_fold(&self.merged, |node, segment| node.get(segment))
            // The reader and the defaults disagree on a key name: a bug, not user input.
            .ok_or_else(|| anyhow!("internal error: config key '{key}' has no default"))?;
        serde_yaml::from_value(value.clone()).map_err(|err| {
            anyhow!(
                "{}: {key}: {}",
                self.origin_of(key),
                type_error::<T>(&err, value)
            )
        })
    }

    /// Where the values a rule over `key` (and the keys `also` involved) came from: the
    /// `--set` arguments among them when there are any, since an override is what changed,
    /// else where `key`'s value came from.
    pub(super) fn origin_of_rule(&self, key: &str, also: &[&str]) -> String {
        let mut sets: Vec<String> = Vec::new();
        for involved in std::iter::once(key).chain(also.iter().copied()) {
            if let Some(Origin::Set(arg)) = self.origins.get(involved) {
                let named = format!("--set {arg}");
                if !sets.contains(&named) {
                    sets.push(named);
                }
            }
        }
        if sets.is_empty() {
            self.origin_of(key)
        } else {
            sets.join(", ")
        }
    }

    /// Where the value of dotted `key` came from: `file:line`, `--set ...`, or the file name.
    pub(super) fn origin_of(&self, key: &str) -> String {
        match self.origins.get(key) {
            Some(Origin::File) => {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                self.file_position(&path)
            }
            Some(Origin::Set(arg)) => format!("--set {arg}"),
            // A default value, or a rule spanning several keys: the file is all we can say.
            None => self.source.to_owned(),
        }
    }

    fn file_position(&self, path: &[String]) -> String {
        match line_of_key(self.text, path) {
            Some(line) => format!("{}:{line}", self.source),
            None => self.source.to_owned(),
        }
    }
}

/// Mappings whose keys are the user's, not the schema's (keyword arguments of a Gymnasium
/// environment): a file or `--set` adds keys to them or replaces them.
const FREE_FORM: &[&str] = &["env.kwargs"];

/// Merges `incoming` over `target`, where `target`'s mappings are the schema.
fn merge(
    target: &mut Value,
    incoming: Value,
    path: &mut Vec<String>,
    origin: &Origin,
    origins: &mut HashMap<String, Origin>,
) -> Result<(), Problem> {
    if FREE_FORM.contains(&path.join(".").as_str()) {
        return merge_free_form(target, incoming, path, origin, origins);
    }
    let Value::Mapping(known) = target else {
        if incoming.is_mapping() {
            return Err(problem(
                path,
                format!("'{}' takes a single value, not a mapping", path.join(".")),
            ));
        }
        *target = incoming;
        origins.insert(path.join("."), origin.clone());
        return Ok(());
    };
    let entries = match incoming {
        // `section:` with every child commented out parses as null: keep the defaults.
        Value::Null => return Ok(()),
        Value::Mapping(entries) => entries,
        other => {
            let message = if path.is_empty() {
                format!(
                    "the config must be a mapping of keys ({}), found {}",
                    key_list(known),
                    kind(&other)
                )
            } else {
                format!(
                    "'{}' must be a mapping of keys ({}), found {}",
                    path.join("."),
                    key_list(known),
                    kind(&other)
                )
            };
            return Err(problem(path, message));
        }
    };
    for (key, value) in entries {
        path.push(key_text(&key));
        match known.get_mut(&key) {
            Some(slot) => merge(slot, value, path, origin, origins)?,
            None => return Err(unknown_key(path, known)),
        }
        path.pop();
    }
    Ok(())
}

/// Merges `incoming`, which must be a mapping (or null, which empties it), into the free-form
/// mapping `target` key by key; the whole mapping is one value, whose origin is the last that
/// changed it.
fn merge_free_form(
    target: &mut Value,
    incoming: Value,
    path: &[String],
    origin: &Origin,
    origins: &mut HashMap<String, Origin>,
) -> Result<(), Problem> {
    let entries = match incoming {
        Value::Null => Mapping::new(),
        Value::Mapping(entries) => entries,
        other => {
            return Err(problem(
                path,
                format!(
                    "'{}' must be a mapping of names to values, found {}",
                    path.join("."),
                    kind(&other)
                ),
            ))
        }
    };
    match target {
        Value::Mapping(existing) if !entries.is_empty() => existing.extend(entries),
        _ => *target = Value::Mapping(entries),
    }
    origins.insert(path.join("."), origin.clone());
    Ok(())
}

/// Appends to `out` the dotted paths of the leaves at which `a` and `b` differ; both trees
/// have the same shape (they come from the same struct), but for the free-form mappings,
/// which are compared whole.
pub(super) fn differing_leaves(
    a: &Value,
    b: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (a, b) if FREE_FORM.contains(&path.join(".").as_str()) && a != b => {
            out.push(path.join("."));
        }
        _ if FREE_FORM.contains(&path.join(".").as_str()) => {}
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (key, value) in a {
                path.push(key_text(key));
                match b.get(key) {
                    Some(other) => differing_leaves(value, other, path, out),
                    None => out.push(path.join(".")),
                }
                path.pop();
            }
        }
        (a, b) if a != b => out.push(path.join(".")),
        _ => {}
    }
}

/// serde's message for a value `T` cannot take, in the config's words: a key that takes one of
/// several names lists them (where serde says "expected a Value::Tagged enum"), null is called
/// null, and a long value is cut.
fn type_error<T: DeserializeOwned>(err: &serde_yaml::Error, value: &Value) -> String {
    let text = err.to_string();
    if text.contains("Value::Tagged enum") {
        // No name is empty, so serde's answer to "" lists the names there are.
        let names = serde_yaml::from_value::<T>(Value::String(String::new()))
            .err()
            .and_then(|e| {
                let text = e.to_string();
                text.split_once("expected ")
                    .map(|(_, names)| names.to_owned())
            });
        if let Some(names) = names {
            return format!("must be {names}, not {}", shown(value));
        }
    }
    clip_middle(&text.replace("unit value", "null")).into_owned()
}

/// A value as a message names it: a scalar as written (cut when long), else its kind.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{:?}", clip(text)),
        other => kind(other).to_owned(),
    }
}

fn problem(path: &[String], message: String) -> Problem {
    Problem {
        path: path.to_vec(),
        message,
    }
}

fn unknown_key(path: &[String], known: &Mapping) -> Problem {
    let joined = path.join(".");
    let dotted = clip(&joined);
    let message = match path.split_last() {
        Some((_, parent)) if !parent.is_empty() => format!(
            "unknown key '{dotted}' (known keys in '{}': {})",
            parent.join("."),
            key_list(known)
        ),
        _ => format!(
            "unknown key '{dotted}' (known top-level keys: {})",
            key_list(known)
        ),
    };
    problem(path, message)
}

fn key_list(known: &Mapping) -> String {
    known.keys().map(key_text).collect::<Vec<_>>().join(", ")
}

/// A mapping key as the user wrote it (YAML allows numbers and booleans as keys).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => "null".to_owned(),
        other => format!("<{} used as a key>", kind(other)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
