//! Cross-crate tests for foca live in `tests/`; this library is empty.
