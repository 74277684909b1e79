//! `docs/configuration.md` documents every key the configuration parser
//! accepts, and every TOML example in the user documentation is a valid
//! configuration.
//!
//! The keys are not listed here: they are read from the parser itself. For
//! every table the file may hold (found by walking down from the top), the
//! test writes a file with one unknown key in that table and reads serde's
//! `deny_unknown_fields` answer, "unknown field `x`, expected one of `a`,
//! `b`, ...". A key added to the parser is therefore missing from the
//! reference until someone documents it, and this test says which.
//!
//! Pure: no DPDK, runs with `--no-default-features`.

use rvs::control::Config;
use std::path::Path;

/// A key no table accepts.
const UNKNOWN: &str = "zz_not_a_key";

/// How a table is written: `[name]` or `[[name]]` (an array of tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Table,
    Array,
}

/// A table of the configuration file and the keys the parser accepts in it.
#[derive(Clone, Debug)]
struct Section {
    /// Its dotted path from the top: `["virtual_server", "health_check"]`;
    /// empty for the top level.
    path: Vec<String>,
    /// How each step of the path is written.
    forms: Vec<Form>,
    /// The keys the parser accepts in it, in the parser's order.
    keys: Vec<String>,
}

impl Section {
    /// The header as the reference writes it: `[dpdk]`,
    /// `[[virtual_server.real_server]]`.
    fn header(&self) -> String {
        header(&self.path, *self.forms.last().unwrap_or(&Form::Table))
    }
}

fn header(path: &[String], form: Form) -> String {
    let name = path.join(".");
    match form {
        Form::Table => format!("[{name}]"),
        Form::Array => format!("[[{name}]]"),
    }
}

/// The backticked names after "expected" in an unknown-field error about
/// `UNKNOWN`, or `None` when `message` is some other error.
fn expected_keys(message: &str) -> Option<Vec<String>> {
    let (_, rest) = message.split_once(&format!("unknown field `{UNKNOWN}`"))?;
    let (_, rest) = rest.split_once("expected")?;
    let line = rest.lines().next().unwrap_or_default();
    let keys: Vec<String> = line
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// The keys the parser accepts in the table at `path`, written as `forms`
/// says (its parents' forms, then its own), or `None` when no table is
/// accepted there in that form.
fn keys_at(path: &[String], forms: &[Form]) -> Option<Vec<String>> {
    let mut text = String::new();
    for depth in 1..=path.len() {
        text.push_str(&header(&path[..depth], forms[depth - 1]));
        text.push('\n');
    }
    text.push_str(&format!("{UNKNOWN} = 1\n"));
    let errors = Config::from_toml_str(&text).err()?;
    expected_keys(&errors.to_string())
}

/// Every table the configuration file may hold, the top level first.
fn parser_sections() -> Vec<Section> {
    let mut out = Vec::new();
    let mut todo: Vec<(Vec<String>, Vec<Form>)> = vec![(Vec::new(), Vec::new())];
    while let Some((path, forms)) = todo.pop() {
        let keys = keys_at(&path, &forms).unwrap_or_else(|| {
            panic!(
                "the parser gave no unknown-field error for a key in {}",
                header(&path, *forms.last().unwrap_or(&Form::Table))
            )
        });
        for key in &keys {
            let mut child = path.clone();
            child.push(key.clone());
            for form in [Form::Table, Form::Array] {
                let mut child_forms = forms.clone();
                child_forms.push(form);
                if keys_at(&child, &child_forms).is_some() {
                    todo.push((child.clone(), child_forms));
                    break;
                }
            }
        }
        out.push(Section { path, forms, keys });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The lines of `doc` outside fenced code blocks, with their indices.
fn prose_lines(doc: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i, line));
        }
    }
    out
}

/// The keys documented for the table written `header` in `doc`: the first
/// cells (`| \`key\` |`) of the table rows between the heading that names
/// the header in backticks and the next heading. `None` when no heading
/// names it.
fn documented_keys(doc: &str, header: &str) -> Option<Vec<String>> {
    let lines = prose_lines(doc);
    let wanted = format!("`{header}`");
    let start = lines
        .iter()
        .position(|(_, l)| l.starts_with('#') && l.contains(&wanted))?;
    let keys = lines[start + 1..]
        .iter()
        .take_while(|(_, l)| !l.starts_with('#'))
        .filter_map(|(_, l)| {
            let cell = l.strip_prefix('|')?.split('|').next()?.trim();
            let key = cell.strip_prefix('`')?.strip_suffix('`')?;
            Some(key.to_string())
        })
        .collect();
    Some(keys)
}

/// What `doc` fails to document of `sections`, one line each.
fn undocumented(doc: &str, sections: &[Section]) -> Vec<String> {
    let mut problems = Vec::new();
    let tables: Vec<&[String]> = sections.iter().map(|s| s.path.as_slice()).collect();
    for section in sections {
        if section.path.is_empty() {
            // The top level holds only sections, each with its own heading.
            for key in &section.keys {
                if !tables.iter().any(|t| t.len() == 1 && t[0] == *key) {
                    problems.push(format!(
                        "top-level key `{key}` is not a table: document it and teach this test"
                    ));
                }
            }
            continue;
        }
        let header = section.header();
        let Some(documented) = documented_keys(doc, &header) else {
            problems.push(format!("no heading names `{header}`"));
            continue;
        };
        for key in &section.keys {
            let nested = section
                .path
                .iter()
                .chain([key])
                .cloned()
                .collect::<Vec<_>>();
            // A nested table is documented under its own heading.
            if tables.contains(&nested.as_slice()) {
                continue;
            }
            if !documented.contains(key) {
                problems.push(format!("`{header}`: key `{key}` has no row in its table"));
            }
        }
    }
    problems
}

fn read_doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_parser_keys_are_read_from_its_errors() {
    let sections = parser_sections();
    let find = |h: &str| {
        sections
            .iter()
            .find(|s| s.header() == h)
            .unwrap_or_else(|| panic!("{h} not found in {sections:#?}"))
    };
    assert_eq!(find("[dpdk]").keys, ["eal_args", "workers"]);
    assert_eq!(
        find("[[virtual_server.real_server]]").keys,
        [
            "address",
            "weight",
            "upper_threshold",
            "lower_threshold",
            "slow_start_s"
        ]
    );
    assert!(find("[virtual_server.health_check]")
        .keys
        .contains(&"type".to_string()));
    assert!(find("[ha]").keys.contains(&"node_id".to_string()));
}

#[test]
fn every_key_the_parser_accepts_is_in_the_configuration_reference() {
    let problems = undocumented(&read_doc("configuration.md"), &parser_sections());
    assert!(
        problems.is_empty(),
        "docs/configuration.md is missing:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_key_without_a_row_is_reported() {
    let doc = read_doc("configuration.md");
    let without: String = doc
        .lines()
        .filter(|l| !l.starts_with("| `http_expect_status`"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(doc.len(), without.len(), "the row to remove was not found");
    assert_eq!(
        undocumented(&without, &parser_sections()),
        ["`[virtual_server.health_check]`: key `http_expect_status` has no row in its table"]
    );
}

#[test]
fn a_table_without_a_heading_is_reported() {
    let doc = read_doc("configuration.md");
    let without: String = doc
        .lines()
        .filter(|l| !(l.starts_with('#') && l.contains("`[timeouts]`")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        undocumented(&without, &parser_sections()),
        ["no heading names `[timeouts]`"]
    );
}

// ------------------------------------------------------------ examples

/// Completes a fragment: the sections every file needs, where the fragment
/// has none of its own. The names and subnets are the ones the docs' examples
/// share: `outside` 203.0.113.2/24 towards the clients, `inside`
/// 10.1.0.1/24 towards the real servers.
fn complete(block: &str) -> String {
    let has = |h: &str| block.lines().any(|l| l.trim() == h);
    let mut text = String::new();
    if !has("[dpdk]") {
        text.push_str("[dpdk]\neal_args = [\"-l\", \"0-1\", \"--no-huge\", \"--no-shconf\"]\nworkers = [1]\n\n");
    }
    if !has("[[interface]]") {
        text.push_str(
            "[[interface]]\nname = \"outside\"\ndevice = \"0000:03:00.0\"\naddresses = [\"203.0.113.2/24\"]\n\n\
             [[interface]]\nname = \"inside\"\ndevice = \"0000:03:00.1\"\naddresses = [\"10.1.0.1/24\"]\n\n",
        );
    }
    text.push_str(block);
    text
}

/// The ```toml blocks of `doc`, with the line each starts on.
fn toml_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match &mut current {
            Some(_) if fence => out.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None if line.trim() == "```toml" => current = Some((i + 1, String::new())),
            None => {}
        }
    }
    out
}

#[test]
fn every_toml_example_in_the_docs_is_a_valid_configuration() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for name in ["configuration.md", "operations.md", "rvsadm.md"] {
        for (line, block) in toml_blocks(&read_doc(name)) {
            checked += 1;
            if let Err(e) = Config::from_toml_str(&complete(&block)) {
                problems.push(format!("docs/{name}, block at line {line}:\n{e}"));
            }
        }
    }
    assert!(checked >= 10, "only {checked} TOML examples found");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
