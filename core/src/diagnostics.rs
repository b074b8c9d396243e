//! Pieces of error messages about configuration text, shared by every
//! config file the binaries read (`coordinator.toml`, `probe.toml`): where
//! an error is (`file:line: `), which key was probably meant, and the names
//! a serde message quotes. Pure string functions.

use std::fmt;

/// Where in which file an error is; displays as `origin:line: `,
/// `origin: `, `line N: ` or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file (or other origin) the text came from.
    pub origin: Option<String>,
    /// The 1-based line.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Some(origin), Some(line)) => write!(f, "{origin}:{line}: "),
            (Some(origin), None) => write!(f, "{origin}: "),
            (None, Some(line)) => write!(f, "line {line}: "),
            (None, None) => Ok(()),
        }
    }
}

/// The names between backticks in a serde message such as
/// ``unknown field `x`, expected one of `a`, `b` ``.
pub fn backticked(message: &str) -> Vec<String> {
    message.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// `: did you mean "raft_addr"?` when a known key is within a small edit
/// distance of the unknown one; empty otherwise.
pub fn suggestion(unknown: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(": did you mean \"{k}\"?"))
        .unwrap_or_default()
}

/// Levenshtein distance, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The 1-based line of a byte offset (offsets past the end count as the
/// last line).
pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_display_what_they_know() {
        let at = |origin: Option<&str>, line| Location { origin: origin.map(str::to_string), line };
        assert_eq!(at(Some("a.toml"), Some(3)).to_string(), "a.toml:3: ");
        assert_eq!(at(Some("a.toml"), None).to_string(), "a.toml: ");
        assert_eq!(at(None, Some(3)).to_string(), "line 3: ");
        assert_eq!(at(None, None).to_string(), "");
    }

    #[test]
    fn suggestions_edit_distances_lines_and_names() {
        let known: Vec<String> = ["api_addr", "raft_addr", "region"].iter().map(|s| s.to_string()).collect();
        assert_eq!(suggestion("raft_adr", &known), ": did you mean \"raft_addr\"?");
        assert_eq!(suggestion("regoin", &known), ": did you mean \"region\"?");
        assert_eq!(suggestion("completely_else", &known), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
        assert_eq!(backticked("unknown field `x`, expected one of `a`, `b`"), ["x", "a", "b"]);
    }
}
