//! Reads the few EAL options that the rest of the config depends on.
//!
//! `dpdk.eal_args` goes to the EAL as written, and most of it is none of
//! our business. But some options contradict other fields, and the EAL
//! would only say so after the operator has started the appliance (or not
//! at all): the core list must hold every worker lcore and keep the main
//! lcore for the control thread; devices that are interfaces are given to
//! the EAL by rvsd, and naming them again would probe them twice or block
//! them. This module finds those options, in the spellings getopt accepts
//! (`-l 0-2`, `-l0-2`, `--lcores 0-2`, `--lcores=0-2`); forms it does not
//! follow (an `--lcores` with CPU groups in parentheses) make it skip the
//! checks rather than guess.

use std::collections::BTreeSet;

use super::device::normalize_pci;
use super::MAX_LCORES;

/// An option's value and the index of the argument that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct At<T> {
    pub index: usize,
    pub value: T,
}

/// The spelling of a core list option, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CoreOption {
    List,
    Lcores,
    Mask,
}

impl CoreOption {
    pub(super) fn flag(self) -> &'static str {
        match self {
            CoreOption::List => "-l",
            CoreOption::Lcores => "--lcores",
            CoreOption::Mask => "-c",
        }
    }
}

/// A core list option and the lcores it enables, when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CoreList {
    pub option: CoreOption,
    pub text: String,
    pub lcores: Option<BTreeSet<u32>>,
}

/// An option naming a device: `--vdev`, `-a`/`--allow`, `-b`/`--block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DeviceOption {
    pub flag: &'static str,
    /// The device's port name: a normalised PCI address or a vdev name.
    pub port_name: String,
}

/// What `eal_args` says about cores, devices and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EalArgs {
    /// Every core list option, in order (more than one is an error).
    pub core_lists: Vec<At<CoreList>>,
    pub main_lcore: Option<At<u32>>,
    pub devices: Vec<At<DeviceOption>>,
    pub in_memory: Option<usize>,
    pub no_huge: Option<usize>,
    /// Options whose value is malformed or missing.
    pub problems: Vec<At<String>>,
}

/// What an option we look at means.
#[derive(Clone, Copy)]
enum Kind {
    Cores(CoreOption),
    MainLcore,
    Device(&'static str),
}

/// Options that take a value: (short form, long form, meaning).
const VALUE_OPTIONS: &[(Option<&str>, Option<&str>, Kind)] = &[
    (Some("-l"), None, Kind::Cores(CoreOption::List)),
    (None, Some("--lcores"), Kind::Cores(CoreOption::Lcores)),
    (Some("-c"), None, Kind::Cores(CoreOption::Mask)),
    (None, Some("--main-lcore"), Kind::MainLcore),
    (None, Some("--vdev"), Kind::Device("--vdev")),
    (Some("-a"), Some("--allow"), Kind::Device("-a")),
    (Some("-b"), Some("--block"), Kind::Device("-b")),
];

/// Matches `arg` against one option's spellings; returns the value if it
/// is attached (`-l0-2`, `--lcores=0-2`), `Some(None)` if it is the next
/// argument, `None` if `arg` is not this option.
fn match_option<'a>(
    arg: &'a str,
    short: Option<&str>,
    long: Option<&str>,
) -> Option<Option<&'a str>> {
    if let Some(long) = long {
        if arg == long {
            return Some(None);
        }
        if let Some(value) = arg.strip_prefix(long).and_then(|r| r.strip_prefix('=')) {
            return Some(Some(value));
        }
    }
    if let Some(short) = short {
        if arg == short {
            return Some(None);
        }
        if !arg.starts_with("--") {
            if let Some(value) = arg.strip_prefix(short) {
                return Some(Some(value));
            }
        }
    }
    None
}

impl EalArgs {
    /// Reads `args`; never fails, malformed values land in `problems`.
    pub(super) fn read(args: &[String]) -> EalArgs {
        let mut out = EalArgs::default();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_str();
            match arg {
                "--in-memory" => out.in_memory = out.in_memory.or(Some(i)),
                "--no-huge" => out.no_huge = out.no_huge.or(Some(i)),
                _ => {}
            }
            let found = VALUE_OPTIONS
                .iter()
                .find_map(|&(short, long, kind)| match_option(arg, short, long).map(|v| (kind, v)));
            let Some((kind, attached)) = found else {
                i += 1;
                continue;
            };
            let (index, value) = match attached {
                Some(v) => (i, v),
                None => match args.get(i + 1) {
                    Some(v) => (i + 1, v.as_str()),
                    None => {
                        out.problems.push(At {
                            index: i,
                            value: format!("{arg} needs a value"),
                        });
                        break;
                    }
                },
            };
            out.take(kind, index, value);
            i = index + 1;
        }
        out
    }

    fn take(&mut self, kind: Kind, index: usize, value: &str) {
        match kind {
            Kind::Cores(option) => {
                let lcores = match option {
                    CoreOption::List => parse_core_list(value).map(Some),
                    CoreOption::Lcores => parse_lcores(value),
                    CoreOption::Mask => parse_core_mask(value).map(Some),
                };
                match lcores {
                    Ok(lcores) => self.core_lists.push(At {
                        index,
                        value: CoreList {
                            option,
                            text: value.to_string(),
                            lcores,
                        },
                    }),
                    Err(message) => self.problems.push(At {
                        index,
                        value: format!("{} {value:?}: {message}", option.flag()),
                    }),
                }
            }
            Kind::MainLcore => match parse_lcore(value) {
                Ok(lcore) => {
                    self.main_lcore = Some(At {
                        index,
                        value: lcore,
                    })
                }
                Err(message) => self.problems.push(At {
                    index,
                    value: format!("--main-lcore {value:?}: {message}"),
                }),
            },
            Kind::Device(flag) => {
                let name = value.split(',').next().unwrap_or_default();
                let port_name = normalize_pci(name).unwrap_or_else(|| name.to_string());
                self.devices.push(At {
                    index,
                    value: DeviceOption { flag, port_name },
                });
            }
        }
    }

    /// The core list in force, if exactly one was given and it was read.
    pub(super) fn lcores(&self) -> Option<(&At<CoreList>, &BTreeSet<u32>)> {
        match self.core_lists.as_slice() {
            [only] => only.value.lcores.as_ref().map(|set| (only, set)),
            _ => None,
        }
    }
}

/// One lcore id, below the EAL's default `RTE_MAX_LCORE`.
fn parse_lcore(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not an lcore number"));
    }
    match s.parse::<u32>() {
        Ok(n) if n < MAX_LCORES => Ok(n),
        _ => Err(format!("lcore {s} is out of range (0..{MAX_LCORES})")),
    }
}

/// `-l` syntax: `N` or `N-M` items separated by commas.
fn parse_core_list(s: &str) -> Result<BTreeSet<u32>, String> {
    let mut set = BTreeSet::new();
    for item in s.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_lcore(a)?, parse_lcore(b)?),
            None => {
                let n = parse_lcore(item)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("range {item:?} runs backwards"));
        }
        set.extend(first..=last);
    }
    Ok(set)
}

/// `--lcores` syntax: like `-l`, each item optionally mapped to CPUs with
/// `@`. CPU groups in parentheses are not followed: `Ok(None)`.
fn parse_lcores(s: &str) -> Result<Option<BTreeSet<u32>>, String> {
    if s.contains('(') || s.contains(')') {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for item in s.split(',') {
        let lcores = item.split_once('@').map_or(item, |(l, _cpus)| l);
        set.extend(parse_core_list(lcores)?);
    }
    Ok(Some(set))
}

/// `-c` syntax: a hexadecimal mask, optionally with `0x`.
fn parse_core_mask(s: &str) -> Result<BTreeSet<u32>, String> {
    let digits = s
        .trim()
        .strip_prefix("0x")
        .or_else(|| s.trim().strip_prefix("0X"))
        .unwrap_or(s.trim());
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "not a hexadecimal core mask of at most {MAX_LCORES} lcores"
        ));
    }
    let mask = u128::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
    if mask == 0 {
        return Err("the mask selects no lcore".to_string());
    }
    Ok((0..MAX_LCORES).filter(|&i| mask >> i & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(args: &[&str]) -> EalArgs {
        EalArgs::read(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn set(ids: &[u32]) -> BTreeSet<u32> {
        ids.iter().copied().collect()
    }

    fn lcores(args: &[&str]) -> BTreeSet<u32> {
        read(args).lcores().expect("a core list").1.clone()
    }

    #[test]
    fn core_list_separate_value() {
        assert_eq!(lcores(&["-l", "0-2,4"]), set(&[0, 1, 2, 4]));
    }

    #[test]
    fn core_list_attached_value() {
        assert_eq!(lcores(&["-l0-1"]), set(&[0, 1]));
    }

    #[test]
    fn lcores_long_forms() {
        assert_eq!(lcores(&["--lcores", "0,2-3"]), set(&[0, 2, 3]));
        assert_eq!(lcores(&["--lcores=1@4,2@5"]), set(&[1, 2]));
    }

    #[test]
    fn lcores_with_cpu_groups_are_not_followed() {
        let eal = read(&["--lcores", "(0-1)@(0-3),2"]);
        assert_eq!(eal.core_lists.len(), 1);
        assert!(eal.lcores().is_none());
        assert!(eal.problems.is_empty());
    }

    #[test]
    fn core_mask_hex() {
        assert_eq!(lcores(&["-c", "0x7"]), set(&[0, 1, 2]));
        assert_eq!(lcores(&["-cA"]), set(&[1, 3]));
    }

    #[test]
    fn malformed_core_lists_are_problems() {
        for args in [
            &["-l", "0-"][..],
            &["-l", "x"],
            &["-l", "3-1"],
            &["-l", "0-200"],
            &["-c", "0"],
            &["-c", "zz"],
            &["-l"],
        ] {
            let eal = read(args);
            assert_eq!(eal.problems.len(), 1, "{args:?}");
        }
    }

    #[test]
    fn value_of_an_option_is_not_read_as_an_option() {
        let eal = read(&["--vdev", "-l", "--in-memory"]);
        assert!(eal.core_lists.is_empty());
        assert_eq!(eal.devices[0].value.port_name, "-l");
        assert_eq!(eal.in_memory, Some(2));
    }

    #[test]
    fn main_lcore_forms() {
        assert_eq!(
            read(&["--main-lcore", "3"]).main_lcore,
            Some(At { index: 1, value: 3 })
        );
        assert_eq!(
            read(&["--main-lcore=2"]).main_lcore,
            Some(At { index: 0, value: 2 })
        );
    }

    #[test]
    fn devices_are_named_by_port_name() {
        let eal = read(&[
            "--vdev=net_pcap0,rx_pcap=a",
            "-a",
            "03:00.0,x=1",
            "--block",
            "0000:04:00.1",
        ]);
        let names: Vec<_> = eal
            .devices
            .iter()
            .map(|d| (d.index, d.value.flag, d.value.port_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (0, "--vdev", "net_pcap0"),
                (2, "-a", "0000:03:00.0"),
                (4, "-b", "0000:04:00.1")
            ]
        );
    }

    #[test]
    fn memory_flags_are_found() {
        let eal = read(&["-n", "4", "--no-huge", "--in-memory"]);
        assert_eq!((eal.no_huge, eal.in_memory), (Some(2), Some(3)));
    }
}
