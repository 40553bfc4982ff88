//! HTTP wire protocols.

pub mod v1;
