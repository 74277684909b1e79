//! Wire formats: zero-copy typed views over byte buffers, and the small value
//! types (MAC addresses, IPv4 prefixes) that every layer above shares.
//!
//! Nothing here knows DPDK: views work over any `AsRef<[u8]>`, so the whole
//! layer is unit-tested and fuzzed without the EAL.

pub mod cidr;
pub mod mac;

pub use cidr::Ipv4Cidr;
pub use mac::MacAddr;
