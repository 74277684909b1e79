//! Thin safe wrappers over the few operating-system interfaces rvs needs
//! that neither std nor rustix offers (ioctls on network devices). Like
//! `crate::dpdk`, this is one of the two places `unsafe` code may live;
//! every block says why it is sound, and nothing unsafe leaks out.
#![allow(unsafe_code)]

pub mod tun;
