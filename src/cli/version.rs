//! `winre --version`: the version, and with it what an examiner records about the binary.

/// The long version text: `0.1.0` then commit, build date, features and the KB table.
pub fn long_version() -> String {
    let features: Vec<&str> = [(cfg!(feature = "crash-hook"), "crash-hook")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    format!(
        "{}\ncommit:     {}\nbuilt:      {} ({} build)\nfeatures:   {}\nKB table:   {} (SHA-256 {})",
        env!("CARGO_PKG_VERSION"),
        env!("WINRE_GIT_COMMIT"),
        env!("WINRE_BUILD_DATE"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        if features.is_empty() {
            "none".to_string()
        } else {
            features.join(", ")
        },
        env!("WINRE_KB_TABLE_DATE"),
        env!("WINRE_KB_TABLE_SHA256"),
    )
}
