//! HTTP wire protocols.
