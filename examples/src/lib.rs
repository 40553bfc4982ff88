//! Shared pieces of the tutorial programs.
