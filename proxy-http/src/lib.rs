//! The phase-driven HTTP proxy.
