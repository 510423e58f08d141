//! Partition tables: GPT (our own validating reader) and MBR.
