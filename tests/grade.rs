//! Exercises and `netlab grade`: the NAT exercise's reference solution scores full
//! marks, the one without MASQUERADE the points of the first three tasks and the NAT
//! task's hint; JSON, CSV and the table; a solution that never ends is stopped and
//! graded as it stands; a mistake in an exercise is exit 2 at its line.

mod common;

use std::path::{Path, PathBuf};

use common::{decode, machine_state, netlab, root};

fn exercise() -> PathBuf {
    root().join("labs/exercises/nat.rhai")
}

fn solutions() -> PathBuf {
    root().join("labs/exercises/nat/solutions")
}

fn grade(solution: &Path, extra: &[&str]) -> (i32, String, String) {
    decode(netlab().arg("grade").arg(exercise()).arg("--solution").arg(solution).args(extra).output().expect("runs"))
}

/// A folder of its own for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-grade-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn reference_full_marks_and_no_masquerade_partial_in_json() {
    let before = machine_state();
    let (code, out, err) = grade(&solutions(), &["--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let records: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    let records = records.as_array().expect("an array");
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["in_rhai", "no_masquerade", "reference"]);
    // The same solution written with netlab's functions (.rhai).
    let in_rhai = &records[0];
    assert_eq!((in_rhai["points"].as_i64(), in_rhai["solution_exit"].as_i64()), (Some(5), Some(0)), "{in_rhai}");

    let reference = &records[2];
    assert_eq!(reference["points"], 5, "{reference}");
    assert_eq!(reference["max_points"], 5);
    assert_eq!(reference["outcome"], "graded");
    assert_eq!(reference["solution_exit"], 0);
    let tasks = reference["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 4);
    for t in tasks {
        assert_eq!(t["passed"], true, "{t}");
        assert_eq!(t["points"], t["max_points"], "{t}");
        assert!(t["hint"].is_null() && t["message"].is_null(), "{t}");
    }
    assert!(reference["duration_s"].as_f64().expect("duration") > 0.0);

    let broken = &records[1];
    assert_eq!(broken["points"], 3, "{broken}");
    assert_eq!(broken["outcome"], "graded");
    let tasks = broken["tasks"].as_array().expect("tasks");
    let passed: Vec<bool> = tasks.iter().map(|t| t["passed"].as_bool().expect("passed")).collect();
    assert_eq!(passed, [true, true, true, false], "{broken}");
    let nat = &tasks[3];
    assert_eq!((nat["points"].as_i64(), nat["max_points"].as_i64()), (Some(0), Some(2)));
    let hint = nat["hint"].as_str().expect("a hint for the failed task");
    assert!(hint.contains("iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"), "{hint}");
    // The failed check says what did not happen: the page never came.
    let message = nat["message"].as_str().expect("a message");
    assert!(message.contains("container4 curl http://203.0.113.10/"), "{message}");
    assert_eq!(before, machine_state(), "grading changed the machine");
}

#[test]
fn csv_and_table() {
    let (code, out, err) = grade(&solutions(), &["--format", "csv", "--jobs", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut rows = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = rows.headers().expect("a header").iter().map(String::from).collect();
    assert_eq!(header[..5], ["name", "points", "max_points", "outcome", "duration_s"]);
    assert_eq!(header.len(), 9, "a column per task: {header:?}");
    assert!(header[8].starts_with("MASQUERADE"), "{header:?}");
    let rows: Vec<Vec<String>> = rows.records().map(|r| r.expect("a row").iter().map(String::from).collect()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][..4], ["no_masquerade", "3", "5", "graded"]);
    assert_eq!(rows[1][5..], ["1", "1", "1", "0"]);
    assert_eq!(rows[2][..4], ["reference", "5", "5", "graded"]);
    assert_eq!(rows[2][5..], ["1", "1", "1", "2"]);

    let (code, out, err) = grade(&solutions().join("no_masquerade.sh"), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let row = out.lines().find(|l| l.starts_with("no_masquerade")).expect("a row for the student");
    assert!(row.contains("3/5") && row.contains("✓  ✓  ✓  ✗"), "{out}");
    assert!(row.contains("task 4: the internet has no route back"), "{out}");
    assert!(out.contains("graded 1 solution of"), "{out}");
}

#[test]
fn a_solution_that_never_ends_is_stopped_and_graded_as_it_stands() {
    let dir = scratch("timeout");
    // It makes the namespace, writes outside the sandbox's /tmp, then hangs (with a
    // child of its own).
    let outside = root().join("target").join(format!("grade-escape-{}", std::process::id()));
    let script = format!("ip netns add container4\necho x > {}\nsleep 1000 &\nsleep 1000\n", outside.display());
    std::fs::write(dir.join("sleeper.sh"), script).expect("write");
    let before = machine_state();
    let started = std::time::Instant::now();
    let (code, out, err) = grade(&dir, &["--format", "json", "--timeout", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(started.elapsed().as_secs() < 40, "took {:?}", started.elapsed());
    let records: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let r = &records[0];
    assert_eq!(r["name"], "sleeper");
    assert_eq!(r["outcome"], "timeout", "{r}");
    assert_eq!(r["points"], 0);
    assert!(r["solution_exit"].is_null(), "{r}");
    // Graded all the same: container4 was adopted, and has no veth.
    let first = &r["tasks"][0];
    assert_eq!(first["passed"], false);
    assert!(first["message"].as_str().expect("message").contains("container4 has a veth"), "{first}");
    assert!(first["hint"].as_str().expect("hint").starts_with("ip netns add container4"), "{first}");
    assert_eq!(before, machine_state(), "the stopped solution left something behind");
    assert!(!outside.exists(), "the solution wrote {} on the machine", outside.display());
}

#[test]
fn a_plain_run_shows_every_task_not_yet() {
    let (code, out, err) = decode(netlab().arg("run").arg(exercise()).output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Score: 0/5 points"), "{out}");
    assert_eq!(out.matches("   hint: ").count(), 4, "{out}");
    assert!(out.contains("GRADED"), "{out}");
}

#[test]
fn an_unknown_task_option_is_exit_2_at_its_line() {
    let dir = scratch("bad");
    let bad = dir.join("bad_task.rhai");
    std::fs::write(
        &bad,
        "exercise(\"Bad\");\n\
         task(\"one\", #{points: 1, hints: [\"h\"]}, || { expect(true, \"t\"); });\n\
         task(\"two\", #{points: 1, hint: \"h\"}, || { expect(true, \"t\"); });\n",
    )
    .expect("write");
    let out =
        netlab().arg("grade").arg(&bad).arg("--solution").arg(solutions().join("reference.sh")).output().expect("runs");
    let (code, out, err) = decode(out);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("unknown option \"hint\"; this function takes: points, hints"), "{err}");
    assert!(err.contains("bad_task.rhai:3"), "{err}");
    assert!(out.is_empty(), "nothing graded: {out}");
}

/// The live processes of the user the sandboxes run as on the machine (nobody),
/// zombies aside (this machine's init reaps orphans slowly).
fn sandbox_processes() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| {
            let field = |name: &str| s.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
            field("Uid:").split_whitespace().nth(1) == Some("65534") && !field("State:").contains('Z')
        })
        .count()
}

/// A class of 30, one of them malicious: it writes outside the sandbox (a canary
/// in /etc and in this project's folder, the deletion of a file there), starts a
/// fork bomb and sleeps forever. Every student is graded, the others as usual,
/// and the machine is as it was.
#[test]
fn a_class_of_30_with_a_malicious_solution_is_graded_and_the_machine_is_unchanged() {
    let dir = scratch("class");
    let reference = std::fs::read_to_string(solutions().join("reference.sh")).expect("read");
    let broken = std::fs::read_to_string(solutions().join("no_masquerade.sh")).expect("read");
    for i in 1..=29 {
        let text = if i % 4 == 0 { &broken } else { &reference };
        std::fs::write(dir.join(format!("student{i:02}.sh")), text).expect("write");
    }
    let id = std::process::id();
    let canary_etc = PathBuf::from(format!("/etc/netlab-canary-{id}"));
    let canary_here = root().join("target").join(format!("netlab-canary-{id}"));
    let decoy = root().join("target").join(format!("netlab-decoy-{id}"));
    std::fs::write(&decoy, "keep me").expect("write the decoy");
    let malicious = format!(
        "ip netns add container4\n\
         echo pwned > {etc}; echo pwned > {here}; rm -f {decoy}\n\
         bomb() {{ bomb | bomb & }}\n\
         bomb 2>/dev/null\n\
         sleep infinity\n",
        etc = canary_etc.display(),
        here = canary_here.display(),
        decoy = decoy.display(),
    );
    std::fs::write(dir.join("mallory.sh"), malicious).expect("write");
    let before = machine_state();
    let processes_before = sandbox_processes();
    let page = dir.with_extension("html");
    let html = page.display().to_string();
    let (code, out, err) = grade(&dir, &["--format", "json", "--timeout", "5", "--html", &html]);
    assert_eq!(code, 0, "{out}\n{err}");
    let records: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let records = records.as_array().expect("an array");
    assert_eq!(records.len(), 30, "every student has a record");
    // The class report shows every student too (its rendering: tests/grade_html.rs).
    let page = std::fs::read_to_string(&page).expect("the HTML report");
    for r in records {
        let name = r["name"].as_str().expect("name");
        assert!(page.contains(&format!(">{name}<")), "{name} is not on the class report");
    }
    assert!(page.contains("timeout"), "mallory's outcome is on the report");
    for r in records {
        let name = r["name"].as_str().expect("name");
        let (points, outcome) = (r["points"].as_i64(), r["outcome"].as_str());
        match name {
            "mallory" => {
                assert_eq!(outcome, Some("timeout"), "{r}");
                assert_eq!(points, Some(0), "{r}");
            }
            _ => {
                let n: usize = name.trim_start_matches("student").parse().expect("a number");
                let expected = if n % 4 == 0 { 3 } else { 5 };
                assert_eq!((points, outcome), (Some(expected), Some("graded")), "{r}");
            }
        }
    }
    assert_eq!(before, machine_state(), "grading changed the machine");
    assert!(!canary_etc.exists() && !canary_here.exists(), "the malicious solution wrote on the machine");
    assert_eq!(std::fs::read_to_string(&decoy).ok().as_deref(), Some("keep me"), "it deleted a file of the machine");
    std::fs::remove_file(&decoy).expect("remove the decoy");
    // Its fork bomb and its sleep went with its sandbox.
    let started = std::time::Instant::now();
    while sandbox_processes() > processes_before && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(sandbox_processes() <= processes_before, "processes of the sandboxes are left");
}

/// A .rhai solution's mistakes are the student's: a function that does not exist
/// is its output with the line, exit 1, and the tasks are graded as they stand; one
/// that never ends is stopped at --timeout and graded too.
#[test]
fn rhai_solutions_with_a_mistake_or_an_endless_loop_are_graded() {
    let dir = scratch("rhai");
    std::fs::write(
        dir.join("typo.rhai"),
        "let c4 = netns(\"container4\");\nbridge(host, \"br0\");\nvet(host, \"brid4\", \"veth4\");\n",
    )
    .expect("write");
    std::fs::write(dir.join("endless.rhai"), "netns(\"container4\");\nloop { }\n").expect("write");
    let (code, out, err) = grade(&dir, &["--format", "json", "--timeout", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let records: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let (endless, typo) = (&records[0], &records[1]);
    assert_eq!(
        (endless["name"].as_str(), endless["outcome"].as_str()),
        (Some("endless"), Some("timeout")),
        "{endless}"
    );
    assert_eq!(endless["tasks"][0]["message"], "container4 has a veth: the condition is false", "{endless}");
    assert_eq!((typo["name"].as_str(), typo["outcome"].as_str()), (Some("typo"), Some("graded")), "{typo}");
    assert_eq!(typo["solution_exit"], 1, "{typo}");
    assert_eq!(typo["points"], 0, "{typo}");
    // What the student sees of it: the line of the mistake.
    let (code, out, _) = decode(
        netlab().arg("run").arg(exercise()).arg("--solution").arg(dir.join("typo.rhai")).output().expect("runs"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("typo.rhai:3: Function not found: vet"), "{out}");
}

/// `grade --explain`: the reference solution's commands, a script's as written, a
/// .rhai one's as the commands its ops stand for; without a reference, exit 2.
#[test]
fn explain_shows_the_reference_solutions_commands() {
    let (code, out, err) = decode(netlab().arg("grade").arg(exercise()).arg("--explain").output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("Reference solution ("), "{out}");
    assert!(out.contains("reference.sh):\n  ip netns add container4\n"), "{out}");
    assert!(out.contains("\n  iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE\n"), "{out}");
    assert!(!out.contains("set -e") && !out.contains("#"), "no options, no comments: {out}");

    let rhai = solutions().join("in_rhai.rhai");
    let (code, out, err) = decode(
        netlab().arg("grade").arg(exercise()).arg("--explain").arg("--reference").arg(&rhai).output().expect("runs"),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    for line in [
        "ip netns add container4",
        "ip link add brid4 type veth peer name veth4",
        "ip link set veth4 netns container4",
        "ip -n container4 addr add 10.201.0.4/24 dev veth4",
        "ip -n container4 route add default via 10.201.0.1",
        "sysctl -w net.ipv4.ip_forward=1",
        "iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE",
    ] {
        assert!(out.contains(&format!("\n  {line}\n")), "{line:?} in {out}");
    }
    // The starting state's own commands are not the solution's.
    assert!(!out.contains("enp0s3"), "{out}");

    // With JSON on stdout, the explanation goes to stderr.
    let (code, out, err) = grade(&solutions().join("reference.sh"), &["--explain", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("ip netns add container4"), "{err}");
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "{out}");

    let dir = scratch("noref");
    std::fs::copy(exercise(), dir.join("lonely.rhai")).expect("copy");
    let (code, _, err) =
        decode(netlab().arg("grade").arg(dir.join("lonely.rhai")).arg("--explain").output().expect("runs"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no reference solution") && err.contains("--reference"), "{err}");
}

/// What a teacher meets in a class folder: a script written on Windows (CR LF) runs
/// as typed commands would; one bash cannot parse is graded as it stands, and the
/// table says its exit code; a README beside them is no solution.
#[test]
fn crlf_scripts_run_and_a_failed_script_says_its_exit_code() {
    let dir = scratch("class-folder");
    let reference = std::fs::read_to_string(solutions().join("reference.sh")).expect("read");
    std::fs::write(dir.join("windows.sh"), reference.replace('\n', "\r\n")).expect("write");
    std::fs::write(dir.join("syntax.sh"), "ip netns add container4\nif then\n").expect("write");
    std::fs::write(dir.join("README.md"), "not a solution\n").expect("write");
    let (code, out, err) = grade(&dir, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let row =
        |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {out}")).to_string();
    assert!(row("windows").contains("5/5"), "{out}");
    let syntax = row("syntax");
    assert!(syntax.contains("0/5") && syntax.contains("(script exit 2) task 1:"), "{out}");
    assert!(!out.contains("README"), "{out}");
}
