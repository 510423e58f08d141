//! Many images: `winre scan --from-list --shard --jobs` (JSON Lines), `winre report merge` (counts
//! recomputed here from the JSON, CSV parsed back by Python's csv module) and `winre report html`
//! (opened in headless Chromium: it renders, its script runs, the table sorts, hostile paths stay
//! text, and a screenshot shows a page).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The ten layouts of fixtures/make-winre-disks.sh, the demo disk, and the committed demo qcow2.
fn fixture_images() -> &'static [PathBuf] {
    static IMAGES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("fixtures/make-winre-disks.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run make-winre-disks.sh");
        assert!(status.success(), "fixtures/make-winre-disks.sh failed");
        let dir = root().join("fixtures/cache/winre");
        let mut images: Vec<PathBuf> = [
            "gpt-after",
            "gpt-small",
            "gpt-first",
            "mbr",
            "gpt-4k",
            "disabled",
            "on-os",
            "none",
            "fragmented",
            "cluster64k",
            "demo",
        ]
        .iter()
        .map(|name| dir.join(format!("{name}.img")))
        .collect();
        images.push(root().join("fixtures/demo/winre-demo.qcow2"));
        for image in &images {
            assert!(image.is_file(), "{} is missing", image.display());
        }
        images
    })
}

fn winre_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run winre");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for winre")
}

fn winre(args: &[&str]) -> Output {
    winre_in(root(), args, None)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    text(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn path_of(record: &Value) -> String {
    record["source"]["path"]
        .as_str()
        .expect("source.path")
        .to_string()
}

/// A list of `count` distinct items: symlinks to the fixture images (so each item has its own
/// path), with two missing files among them, and comments and blank lines around.
fn make_list(dir: &Path, count: usize) -> (PathBuf, Vec<String>) {
    let images = fixture_images();
    let mut items = Vec::new();
    let mut list = String::from("# a fleet list\n\n");
    for i in 0..count {
        let item = if i == 3 || i == count - 1 {
            dir.join(format!("missing-{i}.img"))
        } else {
            let link = dir.join(format!("image-{i:02}.img"));
            std::os::unix::fs::symlink(&images[i % images.len()], &link).expect("symlink");
            link
        };
        let item = item.display().to_string();
        list.push_str(&format!("  {item}  \n"));
        if i % 5 == 0 {
            list.push_str("   # a comment\n\n");
        }
        items.push(item);
    }
    let path = dir.join("list.txt");
    std::fs::write(&path, list).expect("write list");
    (path, items)
}

#[test]
fn shards_cover_the_list_exactly_once_for_n_1_to_7() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (list, items) = make_list(dir.path(), 23);
    let list = list.to_str().expect("path");
    for n in 1..=7usize {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut sizes = Vec::new();
        for k in 0..n {
            let shard = format!("{k}/{n}");
            let out = winre(&[
                "scan",
                "--from-list",
                list,
                "--shard",
                &shard,
                "--jobs",
                "2",
            ]);
            let lines = json_lines(&out.stdout);
            // Shards that hold a missing file exit 2, the others 0.
            let has_error = lines.iter().any(|l| l.get("error").is_some());
            assert_eq!(
                out.status.code(),
                Some(if has_error { 2 } else { 0 }),
                "shard {shard}: {}",
                text(&out.stderr)
            );
            sizes.push(lines.len());
            for line in &lines {
                *seen.entry(path_of(line)).or_default() += 1;
            }
        }
        let expected: BTreeMap<String, usize> = items.iter().map(|i| (i.clone(), 1)).collect();
        assert_eq!(seen, expected, "N = {n}: every item in exactly one shard");
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        assert!(
            max.zip(min).is_some_and(|(a, b)| a - b <= 1),
            "N = {n}: shard sizes {sizes:?}"
        );
    }
    // Out-of-range shards are refused before anything is scanned.
    for bad in ["3/3", "0/0", "x/2", "1"] {
        let out = winre(&["scan", "--from-list", list, "--shard", bad]);
        assert_eq!(out.status.code(), Some(64), "--shard {bad}: a usage error");
        assert!(out.stdout.is_empty(), "--shard {bad}");
    }
}

#[test]
fn list_lines_equal_single_image_scans_and_a_missing_file_is_an_error_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut items: Vec<String> = fixture_images()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let missing = dir.path().join("gone.vhdx").display().to_string();
    items.insert(4, missing.clone());
    let list_text = format!("# images\n{}\n\n", items.join("\n"));

    // From stdin, to a file.
    let out_file = dir.path().join("out.jsonl");
    let out = winre_in(
        dir.path(),
        &[
            "scan",
            "--from-list",
            "-",
            "--jobs",
            "3",
            "-o",
            out_file.to_str().expect("path"),
        ],
        Some(list_text.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "-o keeps stdout empty");
    assert!(
        !dir.path().join("out.jsonl.partial").exists(),
        "the partial file is renamed when the run completes"
    );
    let written = std::fs::read(&out_file).expect("read -o file");
    let lines: Vec<&str> = std::str::from_utf8(&written)
        .expect("UTF-8")
        .lines()
        .collect();
    assert_eq!(lines.len(), items.len(), "one line per item, in list order");
    for (line, item) in lines.iter().zip(&items) {
        let single = winre(&["scan", "--json", item]);
        let want = text(&single.stdout);
        assert_eq!(
            *line,
            want.trim_end(),
            "the list line for {item} equals `winre scan --json {item}`"
        );
        let record: Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(path_of(&record), *item);
        if *item == missing {
            assert_eq!(single.status.code(), Some(2));
            assert!(record["error"].as_str().is_some_and(|e| !e.is_empty()));
        } else {
            assert_eq!(single.status.code(), Some(0));
            assert!(record.get("error").is_none(), "{line}");
            assert!(record["winre"]["status"].is_string());
        }
    }

    // Every readable list: exit 0. Jobs 1 gives the same bytes as jobs 3.
    let good = dir.path().join("good.txt");
    std::fs::write(
        &good,
        items
            .iter()
            .filter(|i| **i != missing)
            .map(|i| format!("{i}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let one = winre(&[
        "scan",
        "--from-list",
        good.to_str().expect("p"),
        "--jobs",
        "1",
    ]);
    let three = winre(&[
        "scan",
        "--from-list",
        good.to_str().expect("p"),
        "--jobs",
        "3",
    ]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert_eq!(one.stdout, three.stdout);
    assert_eq!(json_lines(&one.stdout).len(), items.len() - 1);

    // A list that cannot be opened is a fatal error, not an empty run.
    let out = winre(&["scan", "--from-list", "/nonexistent/list.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/list.txt"));
}

/// Writes shard files 0/3, 1/3, 2/3 of a list and returns them.
fn scan_shards(dir: &Path, list: &Path) -> Vec<PathBuf> {
    (0..3)
        .map(|k| {
            let path = dir.join(format!("shard-{k}.jsonl"));
            let out = winre(&[
                "scan",
                "--from-list",
                list.to_str().expect("p"),
                "--shard",
                &format!("{k}/3"),
                "-o",
                path.to_str().expect("p"),
            ]);
            assert!(matches!(out.status.code(), Some(0 | 2)));
            path
        })
        .collect()
}

#[test]
fn merge_counts_match_the_json_and_the_csv_parses_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (list, _) = make_list(dir.path(), 17);
    let shards = scan_shards(dir.path(), &list);
    let records: Vec<Value> = shards
        .iter()
        .flat_map(|s| json_lines(&std::fs::read(s).expect("read shard")))
        .collect();
    assert_eq!(records.len(), 17);

    // The counts, computed here from the JSON.
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut kb: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let (mut enough, mut short, mut no_volume, mut errors) = (0u64, 0u64, 0u64, 0u64);
    for r in &records {
        if r.get("error").is_some() {
            errors += 1;
            continue;
        }
        *status
            .entry(r["winre"]["status"].as_str().expect("status").into())
            .or_default() += 1;
        *versions
            .entry(r["winre"]["version"].as_str().unwrap_or("null").into())
            .or_default() += 1;
        match r["recovery_space"]["shortfall"].as_u64() {
            None => no_volume += 1,
            Some(0) => enough += 1,
            Some(_) => short += 1,
        }
        for u in r["updates"].as_array().expect("updates") {
            let name = u["kb"].as_str().or(u["title"].as_str()).expect("name");
            let slot = match u["installed"].as_bool() {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            };
            kb.entry(name.into()).or_default()[slot] += 1;
        }
    }
    assert!(status.len() >= 3 && versions.len() >= 3 && errors == 2 && short > 0 && enough > 0);

    let shard_args: Vec<&str> = shards.iter().map(|p| p.to_str().expect("p")).collect();
    let csv = dir.path().join("images.csv");
    let mut args = vec![
        "report",
        "merge",
        "--json",
        "--csv",
        csv.to_str().expect("p"),
    ];
    args.extend(&shard_args);
    let out = winre(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["images"], 17);
    assert_eq!(summary["errors"], errors);
    assert_eq!(summary["scanned"], 17 - errors);
    assert_eq!(summary["failures"].as_array().map(Vec::len), Some(2));
    let got_status: BTreeMap<String, u64> =
        serde_json::from_value(summary["status"].clone()).expect("status map");
    assert_eq!(got_status, status);
    let got_versions: BTreeMap<String, u64> = summary["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or("null").to_string(),
                v["images"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(got_versions, versions);
    assert_eq!(summary["space"]["enough"], enough);
    assert_eq!(summary["space"]["short"], short);
    assert_eq!(summary["space"]["no_volume"], no_volume);
    let got_kb: BTreeMap<String, [u64; 3]> = summary["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| {
            let name = u["kb"].as_str().or(u["title"].as_str()).expect("name");
            let n = |k: &str| u[k].as_u64().expect("count");
            (
                name.to_string(),
                [n("installed"), n("not_installed"), n("unknown")],
            )
        })
        .collect();
    assert_eq!(got_kb, kb);

    // The CSV, read back by Python's csv module.
    let parsed = Command::new("python3")
        .arg("-c")
        .arg("import csv, json, sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))")
        .arg(&csv)
        .output()
        .expect("python3 (needed to read the CSV back)");
    assert!(parsed.status.success(), "{}", text(&parsed.stderr));
    let table: Vec<Vec<String>> = serde_json::from_slice(&parsed.stdout).expect("csv rows");
    let header = &table[0];
    assert_eq!(
        header.join(","),
        "path,error,format,disk_size,scheme,winre_status,winre_version,wim_xml_version,\
         registry_version,found_by,winre_partition,wim_size,wim_compression,wim_data_runs,\
         recovery_partition,recovery_free,recovery_size,required_free,shortfall,space_verdict,\
         kb_installed,kb_not_installed,problems,bytes_read"
    );
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(table.len(), records.len() + 1);
    for (row, r) in table[1..].iter().zip(&records) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("path")], path_of(r));
        let json_num = |v: &Value| v.as_u64().map(|n| n.to_string()).unwrap_or_default();
        if let Some(e) = r["error"].as_str() {
            assert_eq!(row[col("error")], e);
            assert_eq!(row[col("winre_status")], "");
            continue;
        }
        assert_eq!(
            row[col("winre_status")],
            r["winre"]["status"].as_str().unwrap()
        );
        assert_eq!(
            row[col("winre_version")],
            r["winre"]["version"].as_str().unwrap_or("")
        );
        assert_eq!(
            row[col("recovery_free")],
            json_num(&r["recovery_space"]["free"])
        );
        assert_eq!(
            row[col("shortfall")],
            json_num(&r["recovery_space"]["shortfall"])
        );
        assert_eq!(row[col("disk_size")], json_num(&r["source"]["disk_size"]));
        assert_eq!(row[col("bytes_read")], json_num(&r["stats"]["bytes_read"]));
        let missing: Vec<&str> = r["updates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["installed"] == Value::Bool(false))
            .map(|u| u["kb"].as_str().or(u["title"].as_str()).unwrap())
            .collect();
        assert_eq!(row[col("kb_not_installed")], missing.join(";"));
    }

    // A malformed line is named, the rest still counts, and the exit code says so.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"source\": {\"path\": \"x\"}, \"err\n").expect("write");
    let mut args = vec!["report", "merge", "--json", broken.to_str().expect("p")];
    args.extend(&shard_args);
    let out = winre(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("broken.jsonl line 1"));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    assert_eq!(summary["images"], 17);
    assert_eq!(summary["malformed_lines"], 1);
}

fn chromium(profile: &Path, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium (Debian package chromium) must be installed");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        text(&out.stderr)
    );
    out
}

/// Undoes the entity escaping of a text node in Chromium's DOM dump.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The image paths of the images table, top to bottom, from a DOM dump.
fn table_paths(dom: &str) -> Vec<String> {
    let table = dom
        .split("<table id=\"images\">")
        .nth(1)
        .expect("the images table")
        .split("</table>")
        .next()
        .expect("table end");
    table
        .split("<td class=\"path\">")
        .skip(1)
        .map(|cell| unescape(cell.split("</td>").next().expect("cell end")))
        .collect()
}

/// Console errors Chromium logged for the page (uncaught exceptions, CSP violations).
fn console_errors(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused"))
        .map(str::to_string)
        .collect()
}

#[test]
fn html_renders_in_chromium_sorts_escapes_hostile_paths_and_screenshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory whose name is markup, holding a link to a real image.
    let hostile_dir = dir
        .path()
        .join("<img src=x onerror=\"document.documentElement.setAttribute('data-pwned',1)\">&amp;");
    std::fs::create_dir(&hostile_dir).expect("mkdir");
    let hostile_image = hostile_dir.join("'quoted\" <b>bold.img");
    std::os::unix::fs::symlink(&fixture_images()[1], &hostile_image).expect("symlink");
    let (list, _) = make_list(dir.path(), 12);
    let mut list_text = std::fs::read_to_string(&list).expect("read list");
    list_text.push_str(&format!("{}\n", hostile_image.display()));
    std::fs::write(&list, list_text).expect("write list");
    let scanned = dir.path().join("scan.jsonl");
    let out = winre(&[
        "scan",
        "--from-list",
        list.to_str().expect("p"),
        "-o",
        scanned.to_str().expect("p"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // An error record whose message tries to close the script and style elements.
    let evil_error =
        "</script></style><script>document.documentElement.setAttribute('data-pwned',2)</script>";
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        format!(
            "{}\n",
            serde_json::json!({"source": {"path": "<svg onload=alert(1)>.vhd"}, "error": evil_error})
        ),
    )
    .expect("write");
    let records: Vec<Value> = [&scanned, &extra]
        .iter()
        .flat_map(|p| json_lines(&std::fs::read(p).expect("read")))
        .collect();

    let page = dir.path().join("report.html");
    let out = winre(&[
        "report",
        "html",
        scanned.to_str().expect("p"),
        extra.to_str().expect("p"),
        "-o",
        page.to_str().expect("p"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("read page");
    for banned in [
        "<img src=x",
        "<svg onload",
        "<b>bold",
        "<script>document",
        "http://",
        "https://",
        "src=\"",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
    assert_eq!(html.matches("<script>").count(), 1, "one script: ours");

    let url = format!("file://{}", page.display());
    let profile = dir.path().join("chromium-profile");

    // Rendered as is: the script ran to its end, nothing was injected, the table is in file order.
    let out = chromium(&profile, &["--dump-dom", &url]);
    let dom = text(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script did not finish: {}",
        text(&out.stderr)
    );
    // The hostile text mentions data-pwned; only an attribute would mean it ran.
    let html_tag = dom
        .split("<html")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .expect("html tag");
    assert!(
        html_tag.contains("data-ready") && !html_tag.contains("data-pwned"),
        "injected markup ran: {html_tag}"
    );
    assert!(!dom.contains("data-pwned=\""), "injected markup ran");
    assert_eq!(console_errors(&out.stderr), Vec::<String>::new());
    let paths: Vec<String> = records.iter().map(path_of).collect();
    assert_eq!(
        table_paths(&dom),
        paths,
        "hostile paths come back as the same text"
    );

    // Sorted through the URL hash, the same code path a header click takes.
    let free = |r: &Value| r["recovery_space"]["free"].as_u64();
    let mut want: Vec<&Value> = records.iter().collect();
    want.sort_by(|a, b| match (free(a), free(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (x, y) => x.is_none().cmp(&y.is_none()),
    });
    let want: Vec<String> = want.into_iter().map(path_of).collect();
    let out = chromium(&profile, &["--dump-dom", &format!("{url}#sort=free:desc")]);
    let dom = text(&out.stdout);
    assert!(
        dom.contains("data-sorted=\"free:desc\""),
        "sort did not run"
    );
    assert!(dom.contains("aria-sort=\"descending\""));
    assert_eq!(
        table_paths(&dom),
        want,
        "rows by free space, largest first, empty last"
    );

    let version = |r: &Value| {
        r["winre"]["version"].as_str().map(|v| {
            v.split('.')
                .map(|p| p.parse::<u64>().expect("number"))
                .collect::<Vec<_>>()
        })
    };
    let mut want: Vec<&Value> = records.iter().collect();
    want.sort_by(|a, b| match (version(a), version(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (x, y) => x.is_none().cmp(&y.is_none()),
    });
    let want: Vec<String> = want.into_iter().map(path_of).collect();
    let out = chromium(&profile, &["--dump-dom", &format!("{url}#sort=version")]);
    assert_eq!(
        table_paths(&text(&out.stdout)),
        want,
        "rows by version, oldest first"
    );

    // A screenshot: a PNG of the asked size that is not one flat colour.
    let shot = dir.path().join("report.png");
    chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1000",
            &url,
        ],
    );
    let size = std::fs::metadata(&shot).expect("screenshot written").len();
    assert!(size > 20_000, "screenshot is {size} bytes");
    let stats = Command::new("python3")
        .arg(root().join("tests/png_stats.py"))
        .arg(&shot)
        .output()
        .expect("python3");
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let stats = text(&stats.stdout);
    let fields: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(&fields[..2], ["1200", "1000"], "{stats}");
    let colours: u64 = fields[2].parse().expect("colours");
    let drawn: f64 = fields[3].parse().expect("share");
    assert!(
        colours > 50 && drawn > 0.02,
        "a blank-looking screenshot: {stats}"
    );
}
