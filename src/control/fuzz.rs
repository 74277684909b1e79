//! The TOML loader under arbitrary input: what the fuzz target
//! (`fuzz/fuzz_targets/config_toml.rs`, cargo-fuzz) and the seeded run in
//! the test suite both drive.
//!
//! The contract checked: parsing and validating any text never panics,
//! and a refusal always names what it refuses: every error has a field
//! (a TOML path, or `toml` for text the TOML reader could not place) and
//! a message, and a line when it has one is inside the text. The seeded
//! run mutates the shipped examples (`dpdk-config/*.toml`), which reach
//! far deeper into validation than random bytes do.

use super::config::Config;

/// The shipped example configurations: the fuzz corpus's seeds
/// (`fuzz/corpus/config_toml/` holds the same files).
pub const EXAMPLES: [&str; 6] = [
    include_str!("../../dpdk-config/demo.toml"),
    include_str!("../../dpdk-config/demo-backup.toml"),
    include_str!("../../dpdk-config/nat.toml"),
    include_str!("../../dpdk-config/dr.toml"),
    include_str!("../../dpdk-config/tun.toml"),
    include_str!("../../dpdk-config/pci-example.toml"),
];

/// Parses and validates `data` as a configuration file would be (text
/// that is not UTF-8 is refused by the file reader before this point).
/// Panics, for the fuzzer to report, when a refusal does not name its
/// field or gives a line outside the text.
pub fn check_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = Config::from_toml_str(text) {
        assert!(!errors.0.is_empty(), "a refusal without an error");
        let lines = text.lines().count().max(1);
        for e in &errors.0 {
            assert!(!e.field.is_empty(), "an error without a field: {e}");
            assert!(!e.message.is_empty(), "an error without a message: {e}");
            if let Some(line) = e.line {
                // A span at the very end (a missing newline) may name the
                // line after the last.
                assert!(
                    (1..=lines + 1).contains(&line),
                    "line {line} of {lines}: {e}"
                );
            }
        }
    }
}

/// A small deterministic generator (xorshift), so a failing seed can be
/// replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on the validators' edges.
const TOKENS: [&str; 16] = [
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1e400",
    "\"\"",
    "\"0.0.0.0:0\"",
    "\"127.0.0.1:80\"",
    "\"255.255.255.255/33\"",
    "[]",
    "{}",
    "true",
    "\"net_pcap0\"",
    "\"10.1.0.11:8080\"",
    "[[virtual_server]]",
    "[[virtual_server.real_server]]",
];

/// One mutation of an example: `seed` picks the example and `rounds`
/// edits (byte flips, line deletions, duplications and swaps, values
/// replaced by edge tokens, truncation).
pub fn mutated_example(seed: u64, rounds: usize) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let base = EXAMPLES[rng.below(EXAMPLES.len())];
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for _ in 0..rounds {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(6) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(rng.below(lines.len()), l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Replace a value by an edge token.
                if let Some(eq) = lines[i].find('=') {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    lines[i] = format!("{} = {token}", &lines[i][..eq].trim_end());
                }
            }
            4 => {
                let mut bytes = lines[i].clone().into_bytes();
                if !bytes.is_empty() {
                    let k = rng.below(bytes.len());
                    bytes[k] = b"[]{}\"'=.,#\\x0 \t"[rng.below(15)];
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                lines.insert(i, token.to_string());
            }
        }
    }
    let mut text = lines.join("\n").into_bytes();
    if rng.below(8) == 0 {
        text.truncate(rng.below(text.len() + 1));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_valid() {
        for (i, text) in EXAMPLES.iter().enumerate() {
            assert!(Config::from_toml_str(text).is_ok(), "example {i}");
        }
    }

    /// Mutations the seeded run tries: 600, or `RVS_FUZZ_CONFIG_RUNS` for
    /// a longer run by hand.
    fn runs() -> u64 {
        std::env::var("RVS_FUZZ_CONFIG_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600)
    }

    #[test]
    fn seeded_mutations_of_the_examples_never_panic_and_name_each_refusal() {
        let mut refused = 0;
        let runs = runs();
        for seed in 0..runs {
            let input = mutated_example(seed, 1 + (seed % 4) as usize);
            if Config::from_toml_str(std::str::from_utf8(&input).unwrap()).is_err() {
                refused += 1;
            }
            check_toml(&input);
        }
        // The mutations reach validation's refusals, not only success.
        assert!(refused > runs / 6, "{refused} of {runs} refused");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x5eed);
        for _ in 0..300 {
            let len = rng.below(300);
            let alphabet = b"[]{}=\"'.,#\n abcdefgh0123456789_-";
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            check_toml(&bytes);
        }
    }

    #[test]
    fn the_corpus_in_the_repository_runs_clean() {
        // Seeded from the `dpdk-config/` examples (a copy each: the
        // examples may move on, the seeds stay valid inputs).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_toml");
        let corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(
            corpus.len() >= EXAMPLES.len(),
            "{dir:?} holds {} seeds, fewer than the {} examples",
            corpus.len(),
            EXAMPLES.len()
        );
        for seed in &corpus {
            check_toml(seed);
        }
    }
}
