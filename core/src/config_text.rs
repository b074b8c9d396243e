//! Config files as text: TOML in, a typed and validated value or one
//! [`ConfigError`] out, whose message names the file, the line and the key
//! (`coordinator.toml:22: raft.heartbeat_ms: 5000 must be below
//! raft.election_timeout_min_ms (1000)`). Every config file the binaries
//! read (`coordinator.toml`, `probe.toml`) goes through here; each binary
//! keeps only its typed [`ConfigFile`] and its semantic checks.
//!
//! How it works: the text is parsed once with spans (a syntax error has a
//! line), then deserialized with serde into the caller's type (which should
//! say `deny_unknown_fields`). Serde errors carry only a span and semantic
//! errors only a key path (`peers[1].raft_addr`); an index of every
//! key written turns either into a key and its line.
//!
//! Pure: reading the file is the caller's ([`parse_file`] takes what the
//! read returned), so this module does no I/O.

use std::io;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::diagnostics::{backticked, line_of, suggestion, Location};

/// A typed config file: serde gives its shape, the methods what serde
/// cannot.
pub trait ConfigFile: DeserializeOwned {
    /// What [`ConfigFile::validate`] finds wrong, inside
    /// [`ConfigError::Invalid`].
    type Problem;

    /// More to say after `missing key "KEY" in TABLE` for the key at
    /// `path` (`tls`, `peers`): what to add, starting with `: `. Empty (the
    /// default) when the key's name says enough.
    fn missing_key_hint(path: &str) -> &'static str {
        let _ = path;
        ""
    }

    /// Makes the relative paths in the value relative to `base`, the
    /// directory of the file it was read from.
    fn resolve_paths(&mut self, base: &Path);

    /// The semantic checks: the first problem, as [`invalid`] with the key
    /// path; parsing adds the file and line.
    fn validate(&self) -> Result<(), ConfigError<Self::Problem>>;
}

/// Why a configuration was refused; `P` is the config's own semantic
/// problem. Each message starts with `ORIGIN:LINE: ` when the origin and
/// line are known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError<P> {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The text is not valid TOML.
    #[error("{at}invalid TOML: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// The parser's description.
        message: String,
    },
    /// A key the configuration does not have (a typo, usually).
    #[error(
        "{at}unknown key \"{key}\" in {table}{} (expected {})",
        suggestion(key, expected),
        one_of(expected)
    )]
    UnknownKey {
        /// Where.
        at: Location,
        /// The key as written.
        key: String,
        /// The table it was found in: `the top level`, `[raft]`, `[[peers]]` …
        table: String,
        /// The keys that table accepts.
        expected: Vec<String>,
    },
    /// A required key is absent.
    #[error("{at}missing key \"{key}\" in {table}{hint}")]
    MissingKey {
        /// Where (the table's line; none for the top level).
        at: Location,
        /// The missing key.
        key: String,
        /// The table it is missing from.
        table: String,
        /// What to add ([`ConfigFile::missing_key_hint`]); often empty.
        hint: String,
    },
    /// A value of the wrong type, such as a string for a number.
    #[error("{at}{key}: invalid type: {found}, expected {expected}")]
    WrongType {
        /// Where.
        at: Location,
        /// The key's path, e.g. `peers[1].id`.
        key: String,
        /// What was written, as serde describes it: `string "2"`.
        found: String,
        /// What the key takes: `u64`, `struct RaftConfig`.
        expected: String,
    },
    /// A value of the right type that does not fit: out of the type's
    /// range, or refused by the key's own parser (an address, a duration).
    #[error("{at}{key}: {message}")]
    InvalidValue {
        /// Where.
        at: Location,
        /// The key's path, e.g. `peers[1].raft_addr`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Values that parse but do not make a valid configuration
    /// ([`ConfigFile::validate`]).
    #[error("{at}{key}: {problem}")]
    Invalid {
        /// Where (empty when `validate` runs on a value built in code).
        at: Location,
        /// The key's path, e.g. `raft.heartbeat_ms` or `coordinators[1]`.
        key: String,
        /// What is wrong (boxed: keeps `Result<_, ConfigError<P>>` small).
        problem: Box<P>,
    },
}

impl<P> ConfigError<P> {
    /// The location, for errors that have one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::MissingKey { at, .. }
            | ConfigError::WrongType { at, .. }
            | ConfigError::InvalidValue { at, .. }
            | ConfigError::Invalid { at, .. } => Some(at),
        }
    }
}

/// A semantic problem at the key `path`, without a location yet: what
/// [`ConfigFile::validate`] returns.
pub fn invalid<P>(path: impl Into<String>, problem: P) -> ConfigError<P> {
    ConfigError::Invalid { at: Location::default(), key: path.into(), problem: Box::new(problem) }
}

/// Parses and validates `text`; `origin` (usually the file name) starts
/// every error message. Relative paths stay as written.
pub fn parse<T: ConfigFile>(text: &str, origin: &str) -> Result<T, ConfigError<T::Problem>> {
    parse_in(text, origin, None)
}

/// Parses and validates the file at `path`, given what reading it returned
/// (`std::fs::read_to_string(path)`). Relative paths in it are resolved
/// against the file's directory before validation.
pub fn parse_file<T: ConfigFile>(
    path: &Path,
    read: io::Result<String>,
) -> Result<T, ConfigError<T::Problem>> {
    let origin = path.display().to_string();
    let text = read.map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty());
    parse_in(&text, &origin, base)
}

fn parse_in<T: ConfigFile>(
    text: &str,
    origin: &str,
    base: Option<&Path>,
) -> Result<T, ConfigError<T::Problem>> {
    let document = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        at: Location { origin: Some(origin.into()), line: e.span().map(|s| line_of(text, s.start)) },
        message: e.message().to_string(),
    })?;
    let keys = KeyIndex::new(text, origin, document.get_ref());
    let mut config: T = toml::from_str(text).map_err(|e| keys.explain(&e, T::missing_key_hint))?;
    if let Some(base) = base {
        config.resolve_paths(base);
    }
    config.validate().map_err(|e| keys.locate(e))?;
    Ok(config)
}

/// Every key written in the document: its path (`peers[1].raft_addr`), the
/// spans of the key and of its value, and so its line. Serde errors carry
/// only a span, and semantic errors only a path; this index turns either
/// into a line and a key name.
struct KeyIndex<'t> {
    text: &'t str,
    origin: &'t str,
    entries: Vec<KeyEntry>,
}

struct KeyEntry {
    path: String,
    key_span: Range<usize>,
    value_span: Range<usize>,
    is_table: bool,
}

/// What a serde error's span points at.
enum Target<'a> {
    /// A key: unknown-key errors point here.
    Key(&'a KeyEntry),
    /// A key's value: type and value errors point here.
    Value(&'a KeyEntry),
    /// A table (missing-key errors); `None` for the top level.
    Table(Option<&'a KeyEntry>),
}

impl<'t> KeyIndex<'t> {
    fn new(text: &'t str, origin: &'t str, root: &toml::de::DeTable<'_>) -> KeyIndex<'t> {
        let mut index = KeyIndex { text, origin, entries: Vec::new() };
        index.walk_table(root, "");
        index
    }

    fn walk_table(&mut self, table: &toml::de::DeTable<'_>, prefix: &str) {
        for (key, value) in table.iter() {
            let path = format!("{prefix}{}", key.get_ref());
            self.entries.push(KeyEntry {
                path: path.clone(),
                key_span: key.span(),
                value_span: value.span(),
                is_table: value.get_ref().is_table(),
            });
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => self.walk_table(inner, &format!("{path}.")),
                toml::de::DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{path}[{i}]");
                        // An array-of-tables element spans its `[[header]]`;
                        // any other element, its value (`coordinators[1]`).
                        self.entries.push(KeyEntry {
                            path: item_path.clone(),
                            key_span: item.span(),
                            value_span: item.span(),
                            is_table: item.get_ref().is_table(),
                        });
                        if let toml::de::DeValue::Table(inner) = item.get_ref() {
                            self.walk_table(inner, &format!("{item_path}."));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn at(&self, line: Option<usize>) -> Location {
        Location { origin: Some(self.origin.into()), line }
    }

    /// Turns a serde error from `toml` into a [`ConfigError`] naming the key
    /// and its line.
    fn explain<P>(
        &self,
        error: &toml::de::Error,
        missing_key_hint: fn(&str) -> &'static str,
    ) -> ConfigError<P> {
        let message = error.message();
        let target = error.span().map(|span| self.target(&span)).unwrap_or(Target::Table(None));
        let line = |span: &Range<usize>| Some(line_of(self.text, span.start));
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let names = backticked(rest);
            let (path, at_line) = match target {
                Target::Key(e) | Target::Value(e) => (e.path.as_str(), line(&e.key_span)),
                Target::Table(_) => ("", None),
            };
            let key = names.first().cloned().unwrap_or_else(|| leaf_name(path).to_string());
            return ConfigError::UnknownKey {
                at: self.at(at_line),
                table: table_name(parent_path(path)),
                expected: names.get(1..).unwrap_or_default().to_vec(),
                key,
            };
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            let key = backticked(rest).into_iter().next().unwrap_or_default();
            let (table_path, at_line) = match target {
                Target::Table(Some(e)) | Target::Key(e) | Target::Value(e) => {
                    (e.path.as_str(), line(&e.key_span))
                }
                Target::Table(None) => ("", None),
            };
            let full = if table_path.is_empty() { key.clone() } else { format!("{table_path}.{key}") };
            return ConfigError::MissingKey {
                at: self.at(at_line),
                hint: missing_key_hint(&full).to_string(),
                table: table_name(table_path),
                key,
            };
        }
        let (key, at_line) = match target {
            Target::Key(e) | Target::Value(e) | Target::Table(Some(e)) => (e.path.clone(), line(&e.key_span)),
            Target::Table(None) => (String::new(), error.span().map(|s| line_of(self.text, s.start))),
        };
        // serde's `invalid type: {found}, expected {expected}`; `found` may
        // quote the value, `expected` names a type.
        let wrong_type =
            message.strip_prefix("invalid type: ").and_then(|rest| rest.rsplit_once(", expected "));
        match wrong_type {
            Some((found, expected)) => ConfigError::WrongType {
                at: self.at(at_line),
                key,
                found: found.to_string(),
                expected: expected.to_string(),
            },
            None => ConfigError::InvalidValue { at: self.at(at_line), key, message: message.to_string() },
        }
    }

    /// Adds the origin and the line of the key (or of its nearest written
    /// parent) to an error from [`ConfigFile::validate`].
    fn locate<P>(&self, error: ConfigError<P>) -> ConfigError<P> {
        match error {
            ConfigError::Invalid { key, problem, .. } => {
                ConfigError::Invalid { at: self.at(self.line_of_path(&key)), key, problem }
            }
            other => other,
        }
    }

    fn line_of_path(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(entry) = self.entries.iter().find(|e| e.path == path) {
                return Some(line_of(self.text, entry.key_span.start));
            }
            if path.is_empty() {
                return None;
            }
            path = parent_path(path);
        }
    }

    /// The entry a span is exactly the key or value of; failing that, the
    /// innermost value that contains it (an error inside a custom
    /// deserializer's array, say).
    fn target(&self, span: &Range<usize>) -> Target<'_> {
        if let Some(e) = self.entries.iter().find(|e| e.key_span == *span) {
            return Target::Key(e);
        }
        let exact = self.entries.iter().find(|e| e.value_span == *span);
        let containing = || {
            self.entries
                .iter()
                .filter(|e| e.value_span.start <= span.start && span.end <= e.value_span.end)
                .min_by_key(|e| e.value_span.len())
        };
        match exact.or_else(containing) {
            Some(e) if e.is_table => Target::Table(Some(e)),
            Some(e) => Target::Value(e),
            None => Target::Table(None),
        }
    }
}

/// The path of the table holding a key: `peers[1].raft_addr` → `peers[1]`,
/// `raft.heartbeat_ms` → `raft`, and `peers[1]` or `node_id` → `` (the top
/// level).
fn parent_path(path: &str) -> &str {
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

fn leaf_name(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// How a table is named in messages.
fn table_name(path: &str) -> String {
    if path.is_empty() {
        return "the top level".into();
    }
    match path.find('[') {
        Some(i) => format!("[[{}]]", &path[..i]),
        None => format!("[{path}]"),
    }
}

/// `one of a, b, c`, `a`, or `no keys`.
fn one_of(keys: &[String]) -> String {
    match keys {
        [] => "no keys".into(),
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde::Deserialize;

    use super::*;

    /// A small config with a table, an array of tables and a string array.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default)]
        files: Vec<PathBuf>,
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        hosts: Vec<Host>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        max: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Host {
        port: u16,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Problem(&'static str);

    impl ConfigFile for Sample {
        type Problem = Problem;

        fn missing_key_hint(path: &str) -> &'static str {
            match path {
                "name" => ": every sample has one",
                _ => "",
            }
        }

        fn resolve_paths(&mut self, base: &Path) {
            for file in &mut self.files {
                *file = base.join(&*file);
            }
        }

        fn validate(&self) -> Result<(), ConfigError<Problem>> {
            if let Some(i) = self.files.iter().position(|f| f.ends_with("bad")) {
                return Err(invalid(format!("files[{i}]"), Problem("is bad")));
            }
            if self.limits.max > 10 {
                return Err(invalid("limits.max", Problem("must be at most 10")));
            }
            if self.hosts.iter().any(|h| h.port == 0) {
                return Err(invalid("hosts", Problem("port 0")));
            }
            Ok(())
        }
    }

    fn error(text: &str) -> String {
        parse::<Sample>(text, "s.toml").unwrap_err().to_string()
    }

    #[test]
    fn every_kind_of_error_names_the_file_line_and_key() {
        let cases = [
            ("name = \"a\"\nnmae = 1\n", "s.toml:2: unknown key \"nmae\" in the top level: did you mean \"name\"? (expected one of name, files, limits, hosts)"),
            ("name = \"a\"\n[limits]\nmx = 1\n", "s.toml:3: unknown key \"mx\" in [limits]: did you mean \"max\"? (expected max)"),
            ("files = []\n", "s.toml: missing key \"name\" in the top level: every sample has one"),
            ("name = \"a\"\n[[hosts]]\n", "s.toml:2: missing key \"port\" in [[hosts]]"),
            ("name = 5\n", "s.toml:1: name: invalid type: integer `5`, expected a string"),
            ("name = \"a\"\n[limits]\nmax = -1\n", "s.toml:3: limits.max: invalid value: integer `-1`, expected u32"),
            ("name = \"a\"\nfiles = [\n  \"x\",\n  \"y/bad\",\n]\n", "s.toml:4: files[1]: is bad"),
            ("name = \"a\"\n\n[limits]\nmax = 11\n", "s.toml:4: limits.max: must be at most 10"),
            ("name = \"a\"\n[[hosts]]\nport = 0\n", "s.toml:2: hosts: port 0"),
            ("name = \"a\"\nname = \"b\"\n", "s.toml:2: invalid TOML: duplicate key"),
        ];
        for (text, want) in cases {
            assert_eq!(error(text), want, "{text:?}");
        }
    }

    #[test]
    fn errors_are_typed_and_located() {
        match parse::<Sample>("name = \"a\"\n[limits]\nmax = \"x\"\n", "s.toml").unwrap_err() {
            ConfigError::WrongType { at, key, found, expected } => {
                assert_eq!((at.line, key.as_str()), (Some(3), "limits.max"));
                assert_eq!((found.as_str(), expected.as_str()), ("string \"x\"", "u32"));
            }
            other => panic!("{other}"),
        }
        let built = Sample { name: "a".into(), files: vec![], limits: Limits { max: 99 }, hosts: vec![] };
        let unlocated = built.validate().unwrap_err();
        assert_eq!(unlocated.to_string(), "limits.max: must be at most 10");
        assert_eq!(unlocated.location().map(|l| l.line), Some(None));
    }

    #[test]
    fn files_name_themselves_and_anchor_relative_paths() {
        let path = Path::new("etc/s.toml");
        let sample: Sample = parse_file(path, Ok("name = \"a\"\nfiles = [\"x\"]\n".into())).unwrap();
        assert_eq!((sample.name.as_str(), sample.files), ("a", vec![PathBuf::from("etc/x")]));
        let unread = parse_file::<Sample>(path, Err(io::Error::from(io::ErrorKind::NotFound))).unwrap_err();
        assert_eq!(unread.to_string(), "etc/s.toml: cannot read the config file: entity not found");
        assert!(unread.location().is_none());
        let error = parse_file::<Sample>(path, Ok("name = 1\n".into())).unwrap_err().to_string();
        assert!(error.starts_with("etc/s.toml:1: name: "), "{error}");
    }
}
