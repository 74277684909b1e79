//! Names the TOML key at a byte offset: `interface[1].device`.
//!
//! Why this exists: the toml crate reports a syntax or type error with a
//! byte span, and keeps the key path it knew to itself (it prints it only
//! when it has no span). An operator wants the field named, so this module
//! reads the text up to the span with a small TOML tokenizer that knows
//! table headers, arrays of tables (counting them to give indices), dotted
//! keys, arrays and inline tables. It runs only on the error path, on text
//! the toml crate has already looked at, and gives a best effort: on text it
//! does not follow it returns what it has so far (possibly empty), and it
//! never panics.

use std::collections::HashMap;

/// What encloses the current position inside a value.
enum Frame {
    /// Inside `[ ... ]`: the array's path and the index of the element.
    Array { base: String, index: usize },
    /// Inside `{ ... }`: the table's path, the key being set, and whether a
    /// key comes next.
    Inline {
        base: String,
        key: Option<String>,
        expect_key: bool,
    },
}

/// The key path in effect at `offset` of `text`: the key (or header)
/// starting there, or the key whose value contains `offset`.
pub(super) fn path_at(text: &str, offset: usize) -> String {
    let mut scan = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        table: String::new(),
        key: None,
        arrays_of_tables: HashMap::new(),
        stack: Vec::new(),
        expect_key: true,
    };
    scan.run(offset);
    scan.path()
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The path of the current `[table]` or `[[array]]` element.
    table: String,
    /// The full path of the current top-level key, once read.
    key: Option<String>,
    /// How many elements each array of tables has so far, by its path.
    arrays_of_tables: HashMap<String, usize>,
    stack: Vec<Frame>,
    /// At top level: a key or header comes next (start of a line).
    expect_key: bool,
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn is_bare_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(s))
    }

    fn path(&self) -> String {
        match self.stack.last() {
            Some(Frame::Array { base, index }) => format!("{base}[{index}]"),
            Some(Frame::Inline { base, key, .. }) => match key {
                Some(k) => join(base, k),
                None => base.clone(),
            },
            None => match &self.key {
                Some(k) => k.clone(),
                None => self.table.clone(),
            },
        }
    }

    /// Whether a key or header is expected at the current position.
    fn expecting_key(&self) -> bool {
        match self.stack.last() {
            None => self.expect_key,
            Some(Frame::Inline { expect_key, .. }) => *expect_key,
            Some(Frame::Array { .. }) => false,
        }
    }

    fn run(&mut self, offset: usize) {
        while let Some(b) = self.peek() {
            let at_key = self.expecting_key()
                && (b == b'"'
                    || b == b'\''
                    || is_bare_key_byte(b)
                    || (b == b'[' && self.stack.is_empty()));
            // Keys and headers that start at the offset are the error's
            // subject; values and punctuation there are not yet inside it.
            if self.pos > offset || (self.pos == offset && !at_key) {
                return;
            }
            match b {
                b'\n' => {
                    self.pos += 1;
                    if self.stack.is_empty() {
                        self.expect_key = true;
                    }
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => self.skip_line(),
                b'[' if at_key => {
                    if !self.header() {
                        // A broken header: whatever came before is not
                        // what the error is about.
                        self.table.clear();
                        self.key = None;
                        return;
                    }
                    if self.pos > offset {
                        return;
                    }
                }
                _ if at_key => {
                    let Some(key) = self.key_path() else { return };
                    self.set_key(key);
                    if self.pos > offset {
                        return;
                    }
                }
                _ => {
                    if !self.value_byte(b) {
                        return;
                    }
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// Handles one byte of a value: brackets, separators and scalars.
    /// False when the text stops making sense.
    fn value_byte(&mut self, b: u8) -> bool {
        match b {
            b'[' => {
                let base = self.path();
                self.stack.push(Frame::Array { base, index: 0 });
                self.pos += 1;
            }
            b'{' => {
                let base = self.path();
                self.stack.push(Frame::Inline {
                    base,
                    key: None,
                    expect_key: true,
                });
                self.pos += 1;
            }
            b']' | b'}' => {
                self.stack.pop();
                self.pos += 1;
                if self.stack.is_empty() {
                    self.expect_key = false;
                }
            }
            b',' => {
                match self.stack.last_mut() {
                    Some(Frame::Array { index, .. }) => *index += 1,
                    Some(Frame::Inline {
                        key, expect_key, ..
                    }) => {
                        *key = None;
                        *expect_key = true;
                    }
                    None => return false,
                }
                self.pos += 1;
            }
            b'"' | b'\'' => {
                self.string();
                self.after_scalar();
            }
            _ => {
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b']' | b'}' | b'\n' | b'#' | b' ' | b'\t' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                self.after_scalar();
            }
        }
        true
    }

    fn after_scalar(&mut self) {
        if self.stack.is_empty() {
            self.expect_key = false;
        }
    }

    /// Skips a basic, literal or multi-line string, returning its contents
    /// (escapes left as written, which is enough for quoted keys).
    fn string(&mut self) -> String {
        let Some(quote) = self.peek() else {
            return String::new();
        };
        let triple = [quote; 3];
        let multi = self.starts_with(&triple);
        self.pos += if multi { 3 } else { 1 };
        let start = self.pos;
        while let Some(b) = self.peek() {
            if quote == b'"' && b == b'\\' {
                self.pos += 2;
                continue;
            }
            if multi && self.starts_with(&triple) {
                let end = self.pos;
                self.pos += 3;
                // A closing run may carry up to two quotes of content.
                while self.peek() == Some(quote) {
                    self.pos += 1;
                }
                return self.slice(start, end);
            }
            if !multi && b == quote {
                let end = self.pos;
                self.pos += 1;
                return self.slice(start, end);
            }
            if !multi && b == b'\n' {
                break;
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.bytes.len());
        self.slice(start, end)
    }

    fn slice(&self, start: usize, end: usize) -> String {
        self.bytes
            .get(start..end)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// Reads a dotted key up to and including `=`, returning its segments
    /// joined by dots. None when it is not a key.
    fn key_path(&mut self) -> Option<String> {
        let segments = self.key_segments(b'=')?;
        self.pos += 1; // the '='
        Some(segments.join("."))
    }

    /// Reads `seg(.seg)*` up to (not past) `end`.
    fn key_segments(&mut self, end: u8) -> Option<Vec<String>> {
        let mut segments = Vec::new();
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
            match self.peek()? {
                b'"' | b'\'' => segments.push(self.string()),
                b if is_bare_key_byte(b) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_bare_key_byte) {
                        self.pos += 1;
                    }
                    segments.push(self.slice(start, self.pos));
                }
                _ => return None,
            }
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
            match self.peek()? {
                b'.' => self.pos += 1,
                b if b == end => return Some(segments),
                _ => return None,
            }
        }
    }

    fn set_key(&mut self, key: String) {
        match self.stack.last_mut() {
            Some(Frame::Inline {
                key: k, expect_key, ..
            }) => {
                *k = Some(key);
                *expect_key = false;
            }
            _ => {
                self.key = Some(join(&self.table, &key));
                self.expect_key = false;
            }
        }
    }

    /// Reads `[a.b]` or `[[a.b]]`, making it the current table. False when
    /// the header is malformed.
    fn header(&mut self) -> bool {
        let array = self.starts_with(b"[[");
        self.pos += if array { 2 } else { 1 };
        let Some(segments) = self.key_segments(b']') else {
            return false;
        };
        if array && !self.starts_with(b"]]") {
            return false;
        }
        self.pos += if array { 2 } else { 1 };

        // Resolve each prefix that is an array of tables to its latest
        // element: `[virtual_server.health_check]` belongs to the last
        // `[[virtual_server]]`.
        let mut path = String::new();
        let last = segments.len().saturating_sub(1);
        for (i, segment) in segments.iter().enumerate() {
            path = join(&path, segment);
            if array && i == last {
                let count = self.arrays_of_tables.entry(path.clone()).or_insert(0);
                *count += 1;
                path = format!("{path}[{}]", *count - 1);
            } else if let Some(count) = self.arrays_of_tables.get(&path) {
                path = format!("{path}[{}]", count.saturating_sub(1));
            }
        }
        self.table = path;
        self.key = None;
        self.expect_key = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path at the first occurrence of `needle` in `text`.
    fn at(text: &str, needle: &str) -> String {
        path_at(text, text.find(needle).expect("needle in text"))
    }

    #[test]
    fn key_in_table() {
        let t = "[dpdk]\nworkers = [1]\n[dataplane]\nburst_sise = 3\n";
        assert_eq!(at(t, "burst_sise"), "dataplane.burst_sise");
    }

    #[test]
    fn value_of_key() {
        let t = "[dataplane]\nburst_size = \"x\"\n";
        assert_eq!(at(t, "\"x\""), "dataplane.burst_size");
    }

    #[test]
    fn whole_array_value_is_the_key() {
        let t = "[dpdk]\nworkers = [1, 2]\n";
        assert_eq!(at(t, "[1"), "dpdk.workers");
    }

    #[test]
    fn array_element_has_its_index() {
        let t = "[dpdk]\nworkers = [1, \"a\"]\n";
        assert_eq!(at(t, "\"a\""), "dpdk.workers[1]");
    }

    #[test]
    fn multi_line_array_element_has_its_index() {
        let t = "[dpdk]\neal_args = [\n  \"-l\", # cores\n  \"0-1\",\n  3,\n]\n";
        assert_eq!(at(t, "3"), "dpdk.eal_args[2]");
    }

    #[test]
    fn arrays_of_tables_are_counted() {
        let t = "[[interface]]\nname = \"a\"\n[[interface]]\nnme = \"b\"\n";
        assert_eq!(at(t, "nme"), "interface[1].nme");
    }

    #[test]
    fn header_at_offset_names_the_table() {
        let t = "[[interface]]\nname = \"a\"\n[[interface]]\n";
        assert_eq!(path_at(t, t.rfind("[[").unwrap()), "interface[1]");
    }

    #[test]
    fn unknown_section_header_names_the_section() {
        let t = "[dpdk]\nworkers = [1]\n[timeouts]\nx = 1\n";
        assert_eq!(at(t, "timeouts"), "timeouts");
    }

    #[test]
    fn sub_table_of_array_element_resolves_the_index() {
        let t = "[[vs]]\n[[vs]]\n[vs.hc]\ntype = 3\n[[vs.rs]]\n[[vs.rs]]\nweight = \"x\"\n";
        assert_eq!(at(t, "type"), "vs[1].hc.type");
        assert_eq!(at(t, "weight"), "vs[1].rs[1].weight");
    }

    #[test]
    fn dotted_and_quoted_keys() {
        let t = "dpdk.\"workers\" = [\"x\"]\n";
        assert_eq!(at(t, "\"x\""), "dpdk.workers[0]");
    }

    #[test]
    fn inline_tables_in_arrays() {
        let t = "interface = [{name = \"a\"}, {name = 3}]\n";
        assert_eq!(at(t, "3"), "interface[1].name");
    }

    #[test]
    fn strings_with_brackets_and_commas_do_not_confuse_it() {
        let t = "[dpdk]\neal_args = [\"a,]\", 'b[#', \"\"\"c\n,\"\"\", 7]\n";
        assert_eq!(at(t, "7"), "dpdk.eal_args[3]");
    }

    #[test]
    fn comments_are_skipped() {
        let t = "# [[interface]]\n[dpdk] # x = [\nworkers = 1\n";
        assert_eq!(at(t, "1\n"), "dpdk.workers");
    }

    #[test]
    fn broken_header_names_nothing() {
        let t = "[dpdk]\nworkers = [1]\n[dataplane\nx = 1\n";
        assert_eq!(at(t, "\nx"), "");
    }

    #[test]
    fn nonsense_gives_a_best_effort_without_panicking() {
        for t in [
            "", "[", "[[", "[a", "a", "=", "a = [", "\"", "'''", "[a]]", "a.=", "é = ∂", "\u{0}",
        ] {
            for offset in 0..=t.len() + 2 {
                let _ = path_at(t, offset);
            }
        }
    }
}
