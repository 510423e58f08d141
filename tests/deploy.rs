//! deploy/: the shard script under the environment Kubernetes and Slurm give it, the sbatch
//! wrappers, and the Job manifest's shape (parsed by PyYAML), all with the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn winre_disks() -> PathBuf {
    let status = Command::new("bash")
        .arg(root().join("fixtures/make-winre-disks.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run make-winre-disks.sh");
    assert!(status.success());
    root().join("fixtures/cache/winre")
}

/// A list of 9 items: fixture images and one missing file.
fn make_list(dir: &Path) -> (PathBuf, Vec<String>) {
    let disks = winre_disks();
    let mut items: Vec<String> = [
        "gpt-after",
        "gpt-small",
        "mbr",
        "none",
        "gpt-4k",
        "disabled",
        "on-os",
        "cluster64k",
    ]
    .iter()
    .map(|n| disks.join(format!("{n}.img")).display().to_string())
    .collect();
    items.insert(2, dir.join("missing.vhd").display().to_string());
    let list = dir.join("images.txt");
    std::fs::write(&list, format!("# list\n{}\n", items.join("\n"))).expect("write list");
    (list, items)
}

fn run(program: &Path, env: &[(&str, String)]) -> Output {
    let mut command = Command::new("sh");
    command
        .arg(program)
        .env("WINRE", env!("CARGO_BIN_EXE_winre"));
    for var in [
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_STEP",
        "WINRE_SHARD_INDEX",
        "WINRE_SHARDS",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().expect("run sh")
}

/// Paths in all shard files of `dir`, with how often each occurs.
fn shard_paths(dir: &Path, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for k in 0..count {
        let file = dir.join(format!("shard-{k}-of-{count}.jsonl"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            *seen
                .entry(v["source"]["path"].as_str().expect("path").to_string())
                .or_default() += 1;
        }
    }
    seen
}

#[test]
fn shard_script_under_kubernetes_and_slurm_covers_the_list_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (list, items) = make_list(dir.path());
    let once: BTreeMap<String, usize> = items.iter().map(|i| (i.clone(), 1)).collect();
    let script = root().join("deploy/winre-shard.sh");

    // Kubernetes: JOB_COMPLETION_INDEX 0..3, WINRE_SHARDS 4.
    let k8s = dir.path().join("k8s");
    std::fs::create_dir(&k8s).expect("mkdir");
    for k in 0..4 {
        let out = run(
            &script,
            &[
                ("JOB_COMPLETION_INDEX", k.to_string()),
                ("WINRE_SHARDS", "4".into()),
                ("WINRE_LIST", list.display().to_string()),
                ("WINRE_OUT", k8s.display().to_string()),
                ("WINRE_JOBS", "2".into()),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "pod {k}: an unreadable image is a line, not a failed pod: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(shard_paths(&k8s, 4), once);

    // Slurm, through the sbatch wrapper: --array=10-12 gives ids 10..12, min 10, count 3.
    let slurm = dir.path().join("slurm");
    std::fs::create_dir(&slurm).expect("mkdir");
    for id in 10..13 {
        let out = run(
            &root().join("deploy/slurm/winre-scan.sbatch"),
            &[
                ("SLURM_ARRAY_TASK_ID", id.to_string()),
                ("SLURM_ARRAY_TASK_MIN", "10".into()),
                ("SLURM_ARRAY_TASK_COUNT", "3".into()),
                ("SLURM_CPUS_PER_TASK", "2".into()),
                ("WINRE_SHARD", script.display().to_string()),
                ("WINRE_LIST", list.display().to_string()),
                ("WINRE_OUT", slurm.display().to_string()),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "task {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(shard_paths(&slurm, 3), once);

    // The merge job: a summary, a CSV and a page beside the shards.
    let out = run(
        &root().join("deploy/slurm/winre-merge.sbatch"),
        &[("WINRE_OUT", slurm.display().to_string())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("9 images in 3 file(s): 8 scanned, 1 unreadable"));
    assert!(slurm.join("images.csv").is_file() && slurm.join("report.html").is_file());

    // A shard that cannot run (no list) fails, so the scheduler retries it, and leaves no file.
    let out = run(
        &script,
        &[
            ("JOB_COMPLETION_INDEX", "0".into()),
            ("WINRE_SHARDS", "4".into()),
            (
                "WINRE_LIST",
                dir.path().join("nope.txt").display().to_string(),
            ),
            ("WINRE_OUT", k8s.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!k8s.join("shard-0-of-4.jsonl").exists());

    // A stepped Slurm array would break K/N: refused.
    let out = run(
        &script,
        &[
            ("SLURM_ARRAY_TASK_ID", "2".into()),
            ("SLURM_ARRAY_TASK_COUNT", "3".into()),
            ("SLURM_ARRAY_TASK_STEP", "2".into()),
            ("WINRE_LIST", list.display().to_string()),
            ("WINRE_OUT", slurm.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn kubernetes_manifest_is_an_indexed_job_with_n_shards_and_read_only_images() {
    let manifest = root().join("deploy/kubernetes/winre-scan-job.yaml");
    let out = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))")
        .arg(&manifest)
        .output()
        .expect("python3 with PyYAML (Debian package python3-yaml)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
    let job = &docs[1]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let pod = &job["template"]["spec"];
    let container = &pod["containers"][0];
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        env["WINRE_SHARDS"],
        job["completions"]
            .as_u64()
            .expect("completions")
            .to_string(),
        "N must equal the Job's completions"
    );
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let images = mounts
        .iter()
        .find(|m| m["name"] == "images")
        .expect("images mount");
    assert_eq!(images["readOnly"], true);
    let list_mount = mounts
        .iter()
        .find(|m| m["name"] == "list")
        .expect("list mount");
    let list_key = docs[0]["data"]
        .as_object()
        .expect("data")
        .keys()
        .next()
        .expect("key")
        .clone();
    assert_eq!(
        env["WINRE_LIST"],
        format!("{}/{list_key}", list_mount["mountPath"].as_str().unwrap())
    );
}

/// Docker has no engine here, so deploy/Dockerfile is linted: every instruction known, the
/// final stage's entry point is winre in exec form and is the binary the build stage made, every
/// COPY source exists in the repository (and is not excluded from the build context), the shard
/// script is on the PATH for the Kubernetes Job, and the image does not run as root.
#[test]
fn dockerfile_lint_entry_point_is_winre() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("Dockerfile");
    let ignore =
        std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).expect("ignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Join continuation lines; drop comments.
    let mut instructions: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        instructions.push(std::mem::take(&mut pending));
    }
    assert!(pending.is_empty(), "a continuation line ends the file");
    const KNOWN: [&str; 12] = [
        "FROM",
        "RUN",
        "COPY",
        "WORKDIR",
        "USER",
        "ENTRYPOINT",
        "CMD",
        "ENV",
        "ARG",
        "LABEL",
        "EXPOSE",
        "HEALTHCHECK",
    ];
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in &instructions {
        let (op, args) = instruction.split_once(' ').unwrap_or((instruction, ""));
        assert!(KNOWN.contains(&op), "unknown instruction {op:?}");
        assert_eq!(op, op.to_uppercase(), "{instruction}");
        if op == "FROM" {
            let image = args.split_whitespace().next().unwrap();
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{image}: pin a tag"
            );
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM first")
            .push((op.to_string(), args.trim().to_string()));
    }
    assert_eq!(stages.len(), 2, "a build stage and a small runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);
    assert!(build
        .iter()
        .any(|(op, a)| op == "RUN" && a.contains("cargo build --release --locked --bin winre")));
    for (op, args) in build.iter().chain(runtime) {
        if op == "COPY" && !args.starts_with("--from") {
            let source = args.split_whitespace().next().unwrap();
            if source != "." {
                assert!(
                    root().join(source).exists(),
                    "COPY {source}: not in the repository"
                );
                assert!(
                    !ignored.iter().any(|i| source.starts_with(i)),
                    "COPY {source}: excluded by the .dockerignore"
                );
            }
        }
    }
    let copied: Vec<&str> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY")
        .filter_map(|(_, a)| a.split_whitespace().last())
        .collect();
    let entry = runtime
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, a)| a)
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entry, ["/usr/local/bin/winre"]);
    assert!(copied.contains(&"/usr/local/bin/winre"), "{copied:?}");
    assert!(
        runtime.iter().any(|(op, a)| op == "COPY"
            && a.starts_with("--from=build /src/target/release/winre ")),
        "the runtime stage takes the build stage's binary"
    );
    assert!(
        copied.contains(&"/usr/local/bin/winre-shard.sh"),
        "{copied:?}"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .expect("USER");
    assert!(!user.starts_with('0') && user != "root", "USER {user}");
    // The Kubernetes Job runs the shard script, which the image has on its PATH.
    let manifest =
        std::fs::read_to_string(root().join("deploy/kubernetes/winre-scan-job.yaml")).unwrap();
    assert!(manifest.contains(r#"command: ["winre-shard.sh"]"#));
}
