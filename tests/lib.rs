//! Shared helpers for the integration tests live in `tenfold_lab::qemu`.
