//! Every fixture's `scan --json` record validates against `schema/scan-record.schema.json`, with
//! the independent Python `jsonschema` validator (installed by fixtures/install-tools.sh); and
//! records that break the contract are rejected by it, so the schema is not vacuous.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn build(script: &str, dir: &str) -> PathBuf {
    let status = Command::new("bash")
        .arg(root().join("fixtures").join(script))
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(status.success(), "fixtures/{script} failed");
    root().join("fixtures/cache").join(dir)
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && keep(p.file_name().and_then(|n| n.to_str()).unwrap_or("")))
        .collect();
    files.sort();
    files
}

/// Validates each JSON line of `lines` with jsonschema; returns one verdict line per record
/// ("ok" or the first validation error).
fn validate(lines: &str) -> Vec<String> {
    const CHECK: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for line in sys.stdin:
    errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.path))
    print("ok" if not errors else "%s: %s" % (list(errors[0].absolute_path), errors[0].message[:300]))
"#;
    let pip = root().join("fixtures/cache/pip");
    let pythonpath = match std::env::var("PYTHONPATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", pip.display()),
        _ => pip.display().to_string(),
    };
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(root().join("schema/scan-record.schema.json"))
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jsonschema (fixtures/install-tools.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_fixture_scan_record_matches_the_schema() {
    let winre = build("make-winre-disks.sh", "winre");
    let containers = build("make-containers.sh", "containers");
    let vmdk_ewf = build("make-vmdk-ewf.sh", "vmdk-ewf");
    let mut images = files_in(&winre, |n| n.ends_with(".img"));
    images.push(root().join("fixtures/demo/winre-demo.qcow2"));
    images.extend(files_in(&containers, |n| {
        !n.ends_with(".raw") && !n.ends_with(".tsv")
    }));
    images.extend(files_in(&vmdk_ewf, |n| {
        !n.ends_with(".raw") && n != "raw.img" && n != "big.img"
    }));
    // An unreadable input gives an error record, which the schema describes too.
    images.push(root().join("Cargo.toml"));
    let args: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["scan", "--json"])
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), images.len(), "one record per image");
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().filter(|r| r.get("error").is_none()).count() >= 40,
        "most fixtures scan"
    );
    assert!(records
        .iter()
        .any(|r| r["problems"].as_array().is_some_and(|p| !p.is_empty())));
    for (image, verdict) in images.iter().zip(validate(&stdout)) {
        assert_eq!(verdict, "ok", "{}", image.display());
    }

    // The schema rejects what the contract forbids: a bare-string problem (the old form), a
    // missing stamp, a status outside the enum, a version that is not four numbers.
    let good: serde_json::Value = records
        .iter()
        .find(|r| r["problems"].as_array().is_some_and(|p| !p.is_empty()))
        .cloned()
        .unwrap();
    let mut broken = Vec::new();
    let mut r = good.clone();
    r["problems"] = serde_json::json!(["a sentence"]);
    broken.push(r);
    let mut r = good.clone();
    r.as_object_mut().unwrap().remove("schema_version");
    broken.push(r);
    let mut r = good.clone();
    r["winre"]["status"] = "maybe".into();
    broken.push(r);
    let mut r = good.clone();
    r["winre"]["version"] = "10.0".into();
    broken.push(r);
    let text: String = broken.iter().map(|r| format!("{r}\n")).collect();
    for verdict in validate(&text) {
        assert_ne!(verdict, "ok");
    }
}
