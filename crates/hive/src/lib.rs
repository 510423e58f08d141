//! A small read-only reader of Windows registry hive files (regf), enough for the BCD store and
//! the SOFTWARE hive. Written for winre, which is MIT OR Apache-2.0 (the `nt-hive` crate is GPL).

#![forbid(unsafe_code)]
