//! The CLI contract shared by every command: the exit-code table in each `--help`, usage errors
//! (exit 64, a JSON error document with `--json`), `-j/--threads`, `--version`, and the shell
//! completions and man pages generated from the same definitions, checked with bash and `man -l`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The man pages, written by `winre man` into `dir`: (file name, command words).
fn man_pages(dir: &Path) -> Vec<(String, Vec<String>)> {
    let out = winre(&["man", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut pages: Vec<(String, Vec<String>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|name| {
            let words = name
                .trim_end_matches(".1")
                .split('-')
                .skip(1)
                .map(str::to_string)
                .collect();
            (name, words)
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn every_command_has_a_man_page_that_man_renders_and_a_help_with_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let pages = man_pages(dir.path());
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "winre.1",
        "winre-scan.1",
        "winre-check.1",
        "winre-disk-info.1",
        "winre-wim-ls.1",
        "winre-report-merge.1",
        "winre-completions.1",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (name, words) in &pages {
        // man-db renders the page from the file itself (-l), as a user would read it.
        let rendered = Command::new("man")
            .arg("-l")
            .arg(dir.path().join(name))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man (man-db) is installed by fixtures/install-tools.sh");
        assert!(
            rendered.status.success(),
            "{name}: {}",
            text(&rendered.stderr)
        );
        let page = text(&rendered.stdout);
        assert!(
            page.contains("NAME") && page.contains("SYNOPSIS"),
            "{name}:\n{page}"
        );
        assert!(
            page.contains("Exit codes:"),
            "{name} has no exit-code table:\n{page}"
        );

        let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
        args.push("--help");
        let help = winre(&args);
        assert_eq!(help.status.code(), Some(0), "{args:?}");
        let help = text(&help.stdout);
        assert!(
            help.contains("Exit codes:") && help.contains("64  usage error"),
            "{args:?}:\n{help}"
        );
    }
}

#[test]
fn bash_completion_loads_and_completes_commands_and_flags() {
    let script = winre(&["completions", "bash"]);
    assert_eq!(script.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winre.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    // Load the script in a real bash and ask its completion function, as readline would.
    let complete = |words: &str, cword: usize| -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && COMP_WORDS=({words}) && COMP_CWORD={cword} && \
                 COMP_LINE='{words}' && COMP_POINT=${{#COMP_LINE}} && _winre winre && \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                path.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let commands = complete("winre s", 1);
    assert!(commands.lines().any(|l| l == "scan"), "{commands}");
    let flags = complete("winre scan --th", 2);
    assert!(flags.lines().any(|l| l == "--threads"), "{flags}");
    let shells = complete("winre completions p", 2);
    assert!(shells.lines().any(|l| l == "powershell"), "{shells}");
    for shell in ["zsh", "fish", "powershell"] {
        let out = winre(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(text(&out.stdout).contains("scan"), "{shell}");
    }
}

#[test]
fn version_names_the_commit_build_date_and_kb_table() {
    let out = winre(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = text(&out.stdout);
    let root = env!("CARGO_MANIFEST_DIR");
    if let Ok(git) = Command::new("git")
        .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
        .output()
    {
        if git.status.success() {
            let commit = text(&git.stdout).trim().to_string();
            assert!(
                version.contains(&format!("commit:     {commit}")),
                "{version}"
            );
        }
    }
    let csv = std::fs::read_to_string(Path::new(root).join("crates/core/data/winre-updates.csv"))
        .unwrap();
    let newest = csv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(',').nth(2))
        .max()
        .unwrap();
    assert!(
        version.contains(&format!("KB table:   {newest}")),
        "{version}"
    );
    let sha = Command::new("sha256sum")
        .arg(Path::new(root).join("crates/core/data/winre-updates.csv"))
        .output()
        .unwrap();
    let sha = text(&sha.stdout);
    assert!(
        version.contains(sha.split_whitespace().next().unwrap()),
        "{version}"
    );
    assert!(version.contains("built:      20"), "{version}");
    assert!(version.contains("features:"), "{version}");
}

#[test]
fn usage_errors_exit_64_and_with_json_print_one_error_document() {
    let missing = "/nonexistent/disk.img";
    // An unknown KB is refused before any image is read (an unreadable image would exit 2).
    let out = winre(&["check", missing, "--kb", "KB1234567"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("KB1234567") && err.contains("KB5034441"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    // A known KB reaches the image.
    let out = winre(&["check", missing, "--kb", "kb5034441"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let out = winre(&["scan", missing, "--min-free", "250"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("did you mean 250MiB?"),
        "{}",
        text(&out.stderr)
    );
    for bad in ["0", "100000", "many"] {
        let out = winre(&["scan", missing, "-j", bad]);
        assert_eq!(out.status.code(), Some(64), "-j {bad}");
        let out = winre(&["verify", missing, "--jobs", bad]);
        assert_eq!(out.status.code(), Some(64), "--jobs {bad}");
    }
    let out = winre(&["scan", "--no-such-flag", missing]);
    assert_eq!(out.status.code(), Some(64));

    // With --json: exactly one JSON document on stdout, also for a usage error.
    for args in [
        &["scan", "--json", missing, "--min-free", "12"][..],
        &["verify", "--json", missing, "--bogus"][..],
        &["disk", "info", "--json", missing][..],
        &["wim", "info", "--json", missing][..],
    ] {
        let out = winre(args);
        let stdout = text(&out.stdout);
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"));
        let code = doc["error"]["code"].as_str().unwrap_or_default();
        let expected = if out.status.code() == Some(64) {
            "usage"
        } else {
            "unreadable"
        };
        assert_eq!(code, expected, "{args:?}: {doc}");
        assert!(doc["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(doc["winre_version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["schema_version"].as_u64().is_some());
    }
}

#[test]
fn more_threads_than_images_start_no_more_threads_than_images() {
    // 1024 threads asked for one image: the pool is capped at one, so this is quick and fine.
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("x.img");
    std::fs::write(&bogus, b"not a disk").unwrap();
    let started = std::time::Instant::now();
    let out = winre(&["scan", "-j", "1024", "--json", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed().as_secs() < 10);
}

fn demo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo/winre-demo.qcow2")
        .display()
        .to_string()
}

#[test]
fn extract_prints_what_sha256sum_checks_and_json_and_stdout_forms() {
    let dir = tempfile::tempdir().unwrap();
    let wim = dir.path().join("winre.wim");
    let xml = dir.path().join("ReAgent.xml");
    let out = winre(&[
        "extract",
        &demo(),
        "-o",
        wim.to_str().unwrap(),
        "--reagent",
        xml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sums = dir.path().join("SHA256SUMS");
    std::fs::write(&sums, &out.stdout).unwrap();
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    // coreutils reads our stdout as its own format and agrees with the files written.
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg(&sums)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(text(&check.stdout).contains(": OK"));
    // Where each came from is on stderr, not mixed into the hash lines.
    assert!(
        text(&out.stderr).contains("partition 4"),
        "{}",
        text(&out.stderr)
    );

    // The one overwrite rule: refused (exit 3) without --force, nothing changed.
    let again = winre(&["extract", &demo(), "-o", wim.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(3));
    assert!(text(&again.stderr).contains("--force"));

    // -o -: the WIM on stdout, byte for byte what went to the file.
    let piped = winre(&["extract", &demo(), "-o", "-"]);
    assert_eq!(piped.status.code(), Some(0), "{}", text(&piped.stderr));
    assert_eq!(piped.stdout, std::fs::read(&wim).unwrap());

    let json = winre(&[
        "extract",
        "--json",
        &demo(),
        "-o",
        wim.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(json.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sum = text(&std::fs::read(&sums).unwrap());
    let first_hash = sum.split_whitespace().next().unwrap();
    assert_eq!(doc["files"][0]["sha256"], first_hash);
    assert_eq!(doc["files"][0]["partition"], 4);
    assert_eq!(doc["schema_version"], 2);
}

#[test]
fn check_json_is_one_document_with_a_verdict_per_image() {
    let out = winre(&["check", "--json", &demo(), "/nonexistent.img"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["pass"], false);
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["pass"], false);
    assert!(images[0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("short by"));
    assert!(images[1]["error"].as_str().is_some());
    let pass = winre(&["check", "--json", &demo(), "--min-free", "1MiB"]);
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&pass.stdout).unwrap();
    assert_eq!(doc["pass"], true);
}

#[test]
fn flags_that_need_from_list_fail_alone() {
    for args in [
        &["scan", "-o", "x.jsonl", "a.img"][..],
        &["scan", "--shard", "0/2", "a.img"][..],
    ] {
        let out = winre(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            text(&out.stderr).contains("--from-list"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn report_on_a_file_that_is_not_json_lines_stops_with_a_count_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    let body: String = (0..200).map(|i| format!("line {i} of prose\n")).collect();
    std::fs::write(&junk, body).unwrap();
    let page = dir.path().join("report.html");
    let out = winre(&[
        "report",
        "html",
        junk.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("stopped after 5 lines"), "{err}");
    assert!(
        err.lines().count() <= 8,
        "a few lines, not one per line:\n{err}"
    );
    assert!(err.contains("no scan records"), "{err}");
    assert!(!page.exists(), "no HTML without scan records");
    let out = winre(&["report", "merge", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    // Enough output to fill the pipe: the reader stops after one line, as `| head -1` does.
    let demo = demo();
    let images: Vec<&str> = std::iter::repeat_n(demo.as_str(), 120).collect();
    for args in [
        [&["scan"][..], &images[..]].concat(),
        [&["scan", "--json"][..], &images[..]].concat(),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_winre"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("winre-demo.qcow2"), "{first}");
        // The read end is dropped here.
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {err}", args[1]);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
}

#[test]
fn wim_cat_writes_text_but_no_binary_to_a_terminal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new("bash")
        .arg(root.join("fixtures/make-tree-wims.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(built.success());
    let wim = root.join("fixtures/cache/tree-wims/tree-lzx.wim");
    // util-linux script(1) gives winre a pseudo-terminal as stdout; -e passes its exit code.
    let on_terminal = |path: &str| -> Output {
        Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "{} wim cat {} 1 {path}",
                env!("CARGO_BIN_EXE_winre"),
                wim.display()
            ))
            .arg("/dev/null")
            .output()
            .expect("script (util-linux)")
    };
    let binary = on_terminal("/Windows/System32/winpeshl.exe");
    assert_eq!(binary.status.code(), Some(64), "{}", text(&binary.stdout));
    assert!(text(&binary.stdout).contains("refusing to write it to a terminal"));
    assert!(!text(&binary.stdout).contains("MZ"));
    let txt = on_terminal("/Windows/System32/text.txt");
    assert_eq!(txt.status.code(), Some(0));
    assert!(text(&txt.stdout).contains("recovery environment"));
    // To a pipe the binary is written as is.
    let piped = winre(&[
        "wim",
        "cat",
        wim.to_str().unwrap(),
        "1",
        "/Windows/System32/winpeshl.exe",
    ]);
    assert_eq!(piped.status.code(), Some(0));
    assert!(piped.stdout.starts_with(b"MZ"));
}
