//! Configuration errors: each names the field it is about (as a TOML path,
//! `interface[1].device`) and, where the TOML library told us, the line.
//!
//! Validation collects every problem it finds before giving up, so an
//! operator fixes a file in one pass instead of one error per `--check`.

use std::fmt;
use std::ops::Range;

/// One problem with the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The TOML path of the field at fault, with zero-based indices for
    /// arrays and arrays of tables: `dpdk.workers[1]`, `route[0].via`.
    pub field: String,
    /// The one-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file; never empty when returned
/// as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors about exactly this field path, for callers (and tests)
    /// that look for one problem among several.
    pub fn for_field<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a ConfigError> + 'a {
        self.0.iter().filter(move |e| e.field == field)
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per problem, in file order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The one-based line of a byte offset in `text`; offsets past the end
/// count as the last line.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Collects errors while the file is read, turning spans into lines.
pub(super) struct Errors<'a> {
    text: &'a str,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    /// An empty collector for errors about `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Errors {
            text,
            list: Vec::new(),
        }
    }

    /// Records a problem with `field`, located at `span` when given.
    pub(super) fn push(
        &mut self,
        field: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        self.list.push(ConfigError {
            field: field.into(),
            line: span.map(|s| line_of(self.text, s.start)),
            message: message.into(),
        });
    }

    /// True when nothing has been recorded.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The recorded errors in file order (those without a line first,
    /// ties kept in the order found).
    pub(super) fn into_errors(mut self) -> ConfigErrors {
        self.list.sort_by_key(|e| e.line.unwrap_or(0));
        ConfigErrors(self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_line_displays_line_field_message() {
        let e = ConfigError {
            field: "dataplane.burst_size".into(),
            line: Some(7),
            message: "must be 1..=256".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 7: dataplane.burst_size: must be 1..=256"
        );
    }

    #[test]
    fn error_without_line_displays_field_message() {
        let e = ConfigError {
            field: "interface".into(),
            line: None,
            message: "at least one".into(),
        };
        assert_eq!(e.to_string(), "interface: at least one");
    }

    #[test]
    fn errors_display_one_line_each() {
        let one = ConfigError {
            field: "a".into(),
            line: None,
            message: "x".into(),
        };
        let two = ConfigError {
            field: "b".into(),
            line: Some(2),
            message: "y".into(),
        };
        assert_eq!(
            ConfigErrors(vec![one, two]).to_string(),
            "a: x\nline 2: b: y"
        );
    }

    #[test]
    fn line_of_counts_newlines_before_offset() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 999), 3);
    }

    #[test]
    fn collected_errors_come_out_in_line_order() {
        let mut errors = Errors::new("a\nb\nc\n");
        errors.push("c", Some(4..5), "third");
        errors.push("top", None, "first");
        errors.push("a", Some(0..1), "second");
        let fields: Vec<_> = errors
            .into_errors()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["top", "a", "c"]);
    }
}
