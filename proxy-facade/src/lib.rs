//! The framework in one crate.
