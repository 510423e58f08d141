//! A real Slurm run of deploy/slurm/: the test starts munged, slurmctld and slurmd on localhost
//! (a one-node slurm.conf it writes), submits winre-scan.sbatch as a 3-task array over a list of
//! fixtures, then winre-merge.sbatch after it, waits (bounded), and compares the merged CSV with
//! a single-process `scan --from-list` merged the same way. Skipped, with the reason printed,
//! only when the Slurm or MUNGE daemons are not installed or cannot start here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Daemons this test started; killed (by their own pid) when it ends, pass or fail.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The Slurm client tools, pointed at the test's cluster.
fn slurm(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(which(program).unwrap())
        .args(args)
        .env("SLURM_CONF", dir.join("slurm.conf"))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The fixture list: WinRE disks and one missing file (an error line in both runs).
fn make_list(dir: &Path) -> PathBuf {
    let status = Command::new("bash")
        .arg(root().join("fixtures/make-winre-disks.sh"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "make-winre-disks.sh");
    let disks = root().join("fixtures/cache/winre");
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
    items.insert(3, dir.join("missing.vhdx").display().to_string());
    let list = dir.join("images.txt");
    std::fs::write(&list, format!("# fixtures\n{}\n", items.join("\n"))).unwrap();
    list
}

/// Starts munged, slurmctld and slurmd; None (with the reason) when they cannot start here.
fn start_cluster(dir: &Path) -> Result<Daemons, String> {
    for program in [
        "munged",
        "mungekey",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "sinfo",
    ] {
        if which(program).is_none() {
            return Err(format!(
                "{program} is not installed (fixtures/install-tools.sh installs slurm-wlm and munge)"
            ));
        }
    }
    let mut daemons = Daemons(Vec::new());
    let key = dir.join("munge.key");
    let made = Command::new(which("mungekey").unwrap())
        .args(["--create", "--keyfile"])
        .arg(&key)
        .output()
        .map_err(|e| format!("mungekey: {e}"))?;
    if !made.status.success() {
        return Err(format!("mungekey: {}", text(&made.stderr)));
    }
    let socket = dir.join("munge.sock");
    daemons.0.push(
        Command::new(which("munged").unwrap())
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--log-file={}", dir.join("munged.log").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("munged.err")).unwrap())
            .spawn()
            .map_err(|e| format!("munged: {e}"))?,
    );

    // slurmd -C reports this machine as a node line; slurmctld must run on this host's name.
    let node = Command::new(which("slurmd").unwrap())
        .arg("-C")
        .output()
        .map_err(|e| format!("slurmd -C: {e}"))?;
    let node = text(&node.stdout);
    let field = |name: &str| -> Option<String> {
        node.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    let (Some(host), Some(cpus), Some(memory)) =
        (field("NodeName"), field("CPUs"), field("RealMemory"))
    else {
        return Err(format!("slurmd -C printed no node line: {node}"));
    };
    for sub in ["state", "spool", "out"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        "ClusterName=winretest\n\
         SlurmctldHost={host}(127.0.0.1)\n\
         SlurmctldPort={ctld}\n\
         SlurmdPort={slurmd}\n\
         AuthType=auth/munge\n\
         CredType=cred/munge\n\
         AuthInfo=socket={socket}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\n\
         SlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         SchedulerType=sched/builtin\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_CPU\n\
         ReturnToService=2\n\
         MpiDefault=none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN\n\
         PartitionName=winre Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
        ctld = free_port(),
        slurmd = free_port(),
        socket = socket.display(),
    );
    std::fs::write(dir.join("slurm.conf"), conf).unwrap();
    for (program, args) in [("slurmctld", &["-D", "-i"][..]), ("slurmd", &["-D"][..])] {
        daemons.0.push(
            Command::new(which(program).unwrap())
                .args(args)
                .env("SLURM_CONF", dir.join("slurm.conf"))
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("{program}.err"))).unwrap())
                .spawn()
                .map_err(|e| format!("{program}: {e}"))?,
        );
        if program == "slurmctld" {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    // The node must come up idle (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let state = slurm(dir, "sinfo", &["-h", "-o", "%t"]);
        let state = text(&state.stdout);
        if state.trim() == "idle" || state.trim() == "mix" {
            return Ok(daemons);
        }
        for child in &mut daemons.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "a daemon exited ({status}):\n{}\n{}\n{}",
                    tail(&dir.join("munged.err")),
                    tail(&dir.join("slurmctld.err")),
                    tail(&dir.join("slurmd.err"))
                ));
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the node did not come up (sinfo: {state:?}):\n{}\n{}",
                tail(&dir.join("slurmctld.log")),
                tail(&dir.join("slurmd.log"))
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sorted_lines(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    let mut rows: Vec<String> = lines.collect();
    rows.sort();
    (header, rows)
}

#[test]
fn slurm_array_and_merge_equal_a_single_process_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let list = make_list(dir);
    let _cluster = match start_cluster(dir) {
        Ok(daemons) => daemons,
        Err(why) => {
            eprintln!("SKIPPED slurm_array_and_merge_equal_a_single_process_scan: {why}");
            return;
        }
    };
    let winre = env!("CARGO_BIN_EXE_winre");
    let out = dir.join("out");
    let submit = |args: &[&str]| -> String {
        let run = Command::new(which("sbatch").unwrap())
            .args(args)
            .env("SLURM_CONF", dir.join("slurm.conf"))
            .env("WINRE", winre)
            .env("WINRE_SHARD", root().join("deploy/winre-shard.sh"))
            .env("WINRE_LIST", &list)
            .env("WINRE_OUT", &out)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "sbatch {args:?}: {}",
            text(&run.stderr)
        );
        text(&run.stdout).trim().to_string()
    };
    // Three tasks of one CPU each (the script's own #SBATCH lines ask for 16 tasks of two).
    let scan = root().join("deploy/slurm/winre-scan.sbatch");
    let array = submit(&[
        "--parsable",
        "--array=0-2",
        "--cpus-per-task=1",
        &format!("--output={}/scan-%A_%a.log", dir.display()),
        scan.to_str().unwrap(),
    ]);
    let merge = root().join("deploy/slurm/winre-merge.sbatch");
    let merged = submit(&[
        "--parsable",
        &format!("--dependency=afterany:{array}"),
        &format!("--output={}/merge-%j.log", dir.display()),
        merge.to_str().unwrap(),
    ]);

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let queue = slurm(dir, "squeue", &["-h", "-o", "%i %T"]);
        if text(&queue.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs still queued after 240 s:\n{}\n{}",
            text(&queue.stdout),
            tail(&dir.join("slurmctld.log"))
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    for k in 0..3 {
        let shard = out.join(format!("shard-{k}-of-3.jsonl"));
        assert!(
            shard.is_file(),
            "task {k} wrote no shard; its log:\n{}",
            tail(&dir.join(format!("scan-{array}_{k}.log")))
        );
    }
    let merge_log = std::fs::read_to_string(dir.join(format!("merge-{merged}.log"))).unwrap();
    assert!(out.join("report.html").is_file(), "{merge_log}");

    // The same list in one process, merged the same way.
    let single = dir.join("single.jsonl");
    let run = Command::new(winre)
        .args(["scan", "--from-list"])
        .arg(&list)
        .arg("-o")
        .arg(&single)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "one list item is missing");
    let single_csv = dir.join("single.csv");
    let run = Command::new(winre)
        .args(["report", "merge"])
        .arg(&single)
        .arg("--csv")
        .arg(&single_csv)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));

    let (header, rows) = sorted_lines(&out.join("images.csv"));
    let (single_header, single_rows) = sorted_lines(&single_csv);
    assert_eq!(header, single_header);
    assert_eq!(rows.len(), 9, "every list item once: {rows:#?}");
    assert_eq!(rows, single_rows);
    assert!(merge_log.contains("9"), "{merge_log}");
}
