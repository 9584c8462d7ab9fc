//! netlab in CI: `netlab test` and `netlab run` reports (human, JSON, TAP 14,
//! JUnit), checked with the tools CI servers use — xmllint against Jenkins' JUnit
//! schema, the reference TAP 14 parser (tap-parser, node) — and against the rules
//! of Ant's stricter schema; timeouts, signals, skips, filters and shards.
//!
//! The schema and the parser come from package registries (.ci/report-tools,
//! run by .ci/install-deps); a test that cannot find them fails and says so.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{decode, netlab, root};

const LABS: &str = "tests/report_labs";

/// `netlab test` in the repository root (paths in reports stay relative).
fn test(args: &[&str]) -> (i32, String, String) {
    let out = netlab().current_dir(root()).arg("test").args(args).output().expect("netlab runs");
    decode(out)
}

fn tool(path: &str, install: &str) -> PathBuf {
    let p = root().join(path);
    assert!(p.exists(), "{} is missing: run `bash {install}` (CI does, through .ci/install-deps)", p.display());
    p
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn test_runs_only_rhai_files_in_folders_recursively() {
    let (code, out, err) = test(&[LABS, "--list"]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<&str> = out.lines().collect();
    assert_eq!(
        listed,
        [
            "tests/report_labs/check_fails.rhai",
            "tests/report_labs/nested/also_passes.rhai",
            "tests/report_labs/passes.rhai",
            "tests/report_labs/script_error.rhai",
            "tests/report_labs/skips.rhai",
            "tests/report_labs/times_out.rhai",
        ],
        "README.md, rules.nft and the hidden folder are not labs"
    );
    let (code, _, err) = test(&["tests/report_labs/README.md"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a lab"), "{err}");
}

#[test]
fn filter_matches_paths_and_step_titles() {
    let (_, out, _) = test(&[LABS, "--list", "--filter", "nested"]);
    assert_eq!(out.trim(), "tests/report_labs/nested/also_passes.rhai");
    // "an 802.1Q trunk" is a step title of skips.rhai, found without running it.
    let (_, out, _) = test(&[LABS, "--list", "--filter", "802.1Q"]);
    assert_eq!(out.trim(), "tests/report_labs/skips.rhai");
    let (code, _, err) = test(&[LABS, "--list", "--filter", "no such thing anywhere"]);
    assert_eq!(code, 2, "a filter that matches nothing is a mistake");
    assert!(err.contains("no lab's path or step title contains"), "{err}");
}

#[test]
fn shards_of_labs_are_disjoint_and_cover_it() {
    let (_, all, _) = test(&["labs", "--list"]);
    let all: Vec<String> = all.lines().map(String::from).collect();
    assert!(all.len() >= 10, "{all:?}");
    for n in [1, 2, 3, 4, 7] {
        let mut seen = Vec::new();
        for k in 1..=n {
            let (code, out, err) = test(&["labs", "--list", "--shard", &format!("{k}/{n}")]);
            assert_eq!(code, 0, "{err}");
            let shard: Vec<String> = out.lines().map(String::from).collect();
            assert!(shard.iter().all(|l| !seen.contains(l)), "shard {k}/{n} repeats a lab: {shard:?}");
            seen.extend(shard);
        }
        seen.sort();
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(seen, expected, "shards 1..{n}/{n} cover labs/ exactly");
    }
    for bad in ["0/4", "5/4", "1/0", "two/4"] {
        let (code, _, err) = test(&["labs", "--list", "--shard", bad]);
        assert_eq!(code, 2, "--shard {bad}: {err}");
    }
}

/// The whole fixture suite once, with each report format; shared by the tests below.
struct SuiteRun {
    code: i32,
    json: serde_json::Value,
    tap: String,
    junit: String,
    took: Duration,
}

/// The fixture suite run once for all the tests that read its reports (each run
/// waits out the hung lab's timeout).
fn suite() -> &'static SuiteRun {
    static RUN: std::sync::OnceLock<SuiteRun> = std::sync::OnceLock::new();
    RUN.get_or_init(run_suite)
}

fn run_suite() -> SuiteRun {
    let junit = scratch("suite.xml");
    let started = Instant::now();
    let out = netlab()
        .current_dir(root())
        .args(["test", LABS, "--timeout", "2", "--format", "json", "--junit"])
        .arg(&junit)
        .output()
        .expect("netlab runs");
    let took = started.elapsed();
    let (code, stdout, stderr) = decode(out);
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{stdout}\n{stderr}"));
    let (_, tap, _) = test(&[LABS, "--timeout", "2", "--format", "tap"]);
    SuiteRun { code, json, tap, junit: std::fs::read_to_string(&junit).expect("junit written"), took }
}

#[test]
fn json_report_says_what_happened_to_every_lab_step_and_check() {
    let run = suite();
    assert_eq!(run.code, 1, "a failing lab makes the suite fail");
    assert!(run.took < Duration::from_secs(10), "the hung lab is killed at --timeout 2: {:?}", run.took);
    let j = &run.json;
    assert_eq!(j["schema"], "netlab-report");
    assert_eq!(j["version"], 1);
    let t = &j["totals"];
    assert_eq!(
        (t["labs"].as_u64(), t["passed"].as_u64(), t["failed"].as_u64(), t["errors"].as_u64()),
        (Some(6), Some(2), Some(1), Some(1))
    );
    assert_eq!((t["skipped"].as_u64(), t["timeouts"].as_u64()), (Some(1), Some(1)));
    let lab = |name: &str| {
        j["labs"].as_array().unwrap().iter().find(|l| l["path"].as_str().unwrap().ends_with(name)).cloned().unwrap()
    };
    let failed = lab("check_fails.rhai");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(failed["line"], 8, "points at the failing expect_ping");
    let step2 = &failed["steps"][1];
    assert_eq!((step2["number"].as_u64(), step2["outcome"].as_str()), (Some(2), Some("failed")));
    assert_eq!(step2["checks"][0]["passed"], false);
    assert_eq!(step2["checks"][0]["line"], 8);
    assert!(step2["checks"][0]["reason"].as_str().unwrap().contains("no reply"), "{step2}");
    assert_eq!(failed["steps"][0]["checks"][0]["passed"], true);

    let error = lab("script_error.rhai");
    assert_eq!((error["outcome"].as_str(), error["exit_code"].as_u64()), (Some("error"), Some(2)));
    assert_eq!(error["steps"][0]["outcome"], "error");
    assert!(error["message"].as_str().unwrap().contains("eth7"), "{error}");

    let skipped = lab("skips.rhai");
    assert_eq!((skipped["outcome"].as_str(), skipped["exit_code"].as_u64()), (Some("skipped"), Some(0)));
    assert_eq!(skipped["steps"].as_array().unwrap().len(), 2, "the step after the skip never ran");
    assert_eq!(skipped["steps"][1]["outcome"], "skipped");
    assert_eq!(skipped["steps"][1]["message"], "this lab pretends the kernel has no 802.1Q VLAN");

    let hung = lab("times_out.rhai");
    assert_eq!(hung["outcome"], "timeout");
    assert_eq!(hung["steps"][0]["outcome"], "unfinished");
    assert!(
        hung["message"].as_str().unwrap().contains("in step 1. wait for a program that never ends"),
        "names the step it was in: {hung}"
    );
}

#[test]
fn junit_validates_against_jenkins_schema_and_follows_ants() {
    let xsd = tool(".ci/cache/junit-10.xsd", ".ci/report-tools");
    let run = suite();
    let file = scratch("validate.xml");
    std::fs::write(&file, &run.junit).unwrap();
    let out = Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&file).output().expect("xmllint");
    assert!(
        out.status.success(),
        "Jenkins' schema refuses it: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.junit
    );
    // Ant's schema (windyroad JUnit.xsd) is stricter; its rules, one by one:
    let xpath = |expr: &str| -> String {
        let out = Command::new("xmllint").args(["--xpath", expr]).arg(&file).output().expect("xmllint");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(xpath("count(/testsuites/@*)"), "0", "no attributes on <testsuites>");
    assert_eq!(xpath("count(/testsuites/testsuite)"), "6", "a testsuite per lab");
    for attr in ["name", "tests", "failures", "errors", "time", "timestamp", "hostname", "id", "package"] {
        assert_eq!(xpath(&format!("count(//testsuite[not(@{attr})])")), "0", "every testsuite has {attr}");
    }
    assert_eq!(xpath("count(//testsuite[name(*[1]) != 'properties'])"), "0", "properties first");
    assert_eq!(xpath("count(//testsuite[name(*[last()]) != 'system-err'])"), "0", "system-err last");
    assert_eq!(xpath("count(//testsuite[name(*[last()-1]) != 'system-out'])"), "0", "then system-out");
    assert_eq!(xpath("count(//testcase[count(*) > 1])"), "0", "at most one child per testcase");
    assert_eq!(xpath("count(//testcase/*[not(@type)])"), "0", "failure/error/skipped carry a type");
    assert_eq!(xpath("count(//testcase[not(@classname) or not(@time)])"), "0");
    let stamp = xpath("string(//testsuite[1]/@timestamp)");
    assert!(
        stamp.len() == 19 && stamp.as_bytes()[10] == b'T' && !stamp.ends_with('Z'),
        "timestamp without a zone, as Ant's pattern wants: {stamp}"
    );
    // What it says: a testcase per step, each outcome in its element.
    let suite = |name: &str| format!("//testsuite[@name='tests/report_labs/{name}']");
    assert_eq!(xpath(&format!("count({}/testcase)", suite("check_fails.rhai"))), "2");
    assert_eq!(xpath(&format!("string({}/testcase[2]/failure/@type)", suite("check_fails.rhai"))), "check_failed");
    assert!(xpath(&format!("string({}/testcase[2]/failure)", suite("check_fails.rhai")))
        .starts_with("tests/report_labs/check_fails.rhai:8"));
    assert_eq!(xpath(&format!("string({}/testcase[1]/error/@type)", suite("script_error.rhai"))), "script_error");
    assert_eq!(
        xpath(&format!("string({}/testcase[2]/skipped/@message)", suite("skips.rhai"))),
        "this lab pretends the kernel has no 802.1Q VLAN"
    );
    assert_eq!(xpath(&format!("string({}/testcase[1]/error/@type)", suite("times_out.rhai"))), "timeout");
    assert_eq!(xpath(&format!("string({}/@errors)", suite("times_out.rhai"))), "1");
    assert_eq!(xpath(&format!("count({}/testcase/*)", suite("passes.rhai"))), "0");
}

#[test]
fn tap_parses_with_the_reference_tap14_parser() {
    let parser = tool(".ci/cache/node_modules/.bin/tap-parser", ".ci/report-tools");
    let run = suite();
    assert!(run.tap.starts_with("TAP version 14\n1..6\n"), "{}", run.tap);
    let mut child = Command::new(&parser)
        .args(["--strict", "-j", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tap-parser runs (node)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), run.tap.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tap-parser's JSON");
    let events = events.as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert!(!kinds.contains(&"extra"), "every line is TAP (--strict): {events:?}");
    let complete = &events.iter().find(|e| e[0] == "complete").expect("a complete event")[1];
    assert_eq!(complete["count"], 6);
    assert_eq!(complete["pass"], 3, "two passes and the skip");
    assert_eq!(complete["fail"], 3);
    assert_eq!(complete["skip"], 1);
    // The steps are subtests, parsed as such.
    let children = events.iter().filter(|e| e[0] == "child").count();
    assert_eq!(children, 6, "a subtest per lab");
}

#[test]
fn a_spinning_lab_is_killed_at_the_timeout_and_reported_failed() {
    let lab = scratch("spin.rhai");
    std::fs::write(&lab, "step(\"spin\", || {\n    loop {}\n});\n").unwrap();
    let junit = scratch("spin.xml");
    let started = Instant::now();
    let out = netlab().arg("test").arg(&lab).args(["--timeout", "5", "--junit"]).arg(&junit).output().unwrap();
    let (code, stdout, _) = decode(out);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(code, 1, "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    // Killed at the timeout, or stopped earlier by the lab's own operation budget: failed either way.
    assert!(xml.contains("<error type=\"timeout\"") || xml.contains("<error type=\"script_error\""), "{xml}");
}

/// Every process below `pid`, from /proc (children, their children, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = vec![pid];
    let mut found = Vec::new();
    while let Some(p) = parents.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == p {
                found.push(child);
                parents.push(child);
            }
        }
    }
    found
}

/// Alive: exists and is not a zombie waiting for the machine's init to reap it.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn sigterm_stops_every_lab_and_still_writes_the_reports() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let junit = scratch(&format!("signal{signal}.xml"));
        let child = netlab()
            .current_dir(root())
            .args(["test", LABS, "--jobs", "6", "--timeout", "60", "--junit"])
            .arg(&junit)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the hung lab runs (its sandbox: `netlab run`, its PID 1, sleep).
        let started = Instant::now();
        let mut seen = Vec::new();
        while started.elapsed() < Duration::from_secs(20) {
            seen = descendants(child.id());
            let sleeping = seen.iter().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with("sleep\x00600"))
            });
            if sleeping {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(seen.len() >= 3, "the hung lab started: {seen:?}");
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stdout));
        let left: Vec<u32> = seen.iter().copied().filter(|p| alive(*p)).collect();
        assert!(left.is_empty(), "processes of the run still alive after signal {signal}: {left:?}");
        let xml = std::fs::read_to_string(&junit).expect("the report is written");
        assert!(xml.contains("type=\"interrupted\""), "{xml}");
        assert!(xml.contains("tests/report_labs/passes.rhai"), "labs that finished are reported: {xml}");
    }
}

#[test]
fn fail_fast_starts_no_lab_after_a_failure() {
    let (code, out, _) = test(&[LABS, "--jobs", "1", "--fail-fast", "--timeout", "2"]);
    assert_eq!(code, 1);
    // Sorted order: check_fails.rhai is first and fails; nothing else starts.
    assert!(out.contains("FAIL tests/report_labs/check_fails.rhai"), "{out}");
    assert!(!out.contains("passes.rhai"), "{out}");
    assert!(out.contains("5 not run (--fail-fast)"), "{out}");
}

#[test]
fn a_skipped_lab_exits_0_and_says_skip() {
    let (code, out, err) = common::run_lab(&root().join(LABS).join("skips.rhai"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("⊘ skipped: this lab pretends the kernel has no 802.1Q VLAN"), "{out}");
    assert!(out.contains("SKIP "), "{out}");
    assert!(!out.contains("PASS"), "a skip is never shown as a pass: {out}");
    let (code, _, err) = common::run_text("empty_skip.rhai", "skip(\"  \");\n");
    assert_eq!(code, 2, "a skip needs a reason: {err}");
}

/// Human output, JSON, TAP and JUnit of a passing lab, a failing check, a script
/// error, a skip and a timeout; timings, dates and the machine's name redacted.
#[test]
fn report_snapshots() {
    let (_, human, _) = test(&[LABS, "--jobs", "1", "--timeout", "2"]);
    let run = suite();
    let mut settings = insta::Settings::clone_current();
    for (pattern, with) in [
        (r#""seconds": [0-9.e-]+"#, r#""seconds": "[s]""#),
        (r#"time="[0-9.]+""#, r#"time="[s]""#),
        (r#"timestamp="[0-9T:-]+""#, r#"timestamp="[date]""#),
        (r#"hostname="[^"]*""#, r#"hostname="[host]""#),
        (r"[0-9]+(\.[0-9]+)? ?(µs|ms|s)\b", "[time]"),
        (r"no reply to [0-9]+ requests", "no reply to [n] requests"),
        (r#"name="kernel" value="[^"]*""#, r#"name="kernel" value="[kernel]""#),
        (r#""kernel": "[^"]*""#, r#""kernel": "[kernel]""#),
        (r"kernel [^\s)]+\)", "kernel [kernel])"),
        (r"# kernel \S+", "# kernel [kernel]"),
    ] {
        settings.add_filter(pattern, with);
    }
    settings.bind(|| {
        insta::assert_snapshot!("human", human);
        insta::assert_snapshot!("json", serde_json::to_string_pretty(&run.json).unwrap());
        insta::assert_snapshot!("tap", run.tap);
        insta::assert_snapshot!("junit", run.junit);
    });
}

#[test]
fn requires_skips_exactly_when_the_kernel_lacks_the_feature() {
    let lab = scratch("requires.rhai");
    std::fs::write(
        &lab,
        "let here = has(\"vlan\");\nprint(`vlan: ${here}`);\nrequires(\"veth\", \"bridge\");\nrequires(\"vlan\");\n\
         step(\"a trunk\", || { expect(here, \"only reached with 802.1Q\"); });\n",
    )
    .unwrap();
    let (code, out, err) = decode(netlab().arg("run").arg(&lab).args(["--format", "json"]).output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lab = &j["labs"][0];
    if err.contains("vlan: true") {
        assert_eq!(lab["outcome"], "passed", "{lab}");
    } else {
        assert!(err.contains("vlan: false"), "{err}");
        assert_eq!(lab["outcome"], "skipped", "{lab}");
        assert_eq!(lab["line"], 4, "the requires() that skipped");
        assert!(lab["message"].as_str().unwrap().contains("CONFIG_VLAN_8021Q, module 8021q"), "{lab}");
        assert_eq!(j["totals"]["skipped"], 1);
    }
    let (code, _, err) = common::run_text("unknown_feature.rhai", "requires(\"vlna\");\n");
    assert_eq!(code, 2, "an unknown feature is the lab's mistake: {err}");
    assert!(err.contains("unknown kernel feature \"vlna\"") && err.contains("802.1Q VLAN links"), "{err}");
}

#[test]
fn junit_of_every_lab_validates_with_a_testcase_per_step() {
    let xsd = tool(".ci/cache/junit-10.xsd", ".ci/report-tools");
    let junit = scratch("labs.xml");
    let out = netlab().current_dir(root()).args(["test", "labs", "--format", "json", "--junit"]).arg(&junit).output();
    let (code, stdout, stderr) = decode(out.unwrap());
    assert_eq!(code, 0, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let steps: usize = j["labs"].as_array().unwrap().iter().map(|l| l["steps"].as_array().unwrap().len()).sum();
    let out = Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&junit).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("xmllint").args(["--xpath", "count(//testcase)"]).arg(&junit).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), steps.to_string(), "a testcase per step");
    assert!(steps > 50, "{steps}");
}
