//! The exercises on links, bridges, NAT and DNS (labs/exercises/veth_pair.rhai,
//! bridge_host.rhai, nat_dns.rhai): each one's solutions folder is graded in one call
//! (JSON): its reference solution scores full marks, every task passed; its broken
//! solution the exact points, the exact tasks passed and failed, and the failed
//! task's hint and message. A plain run (no solution) shows every task "not yet" and
//! exits 0, and `netlab check` (the model, no root) accepts the exercise. The machine
//! is left as it was.

mod common;

use common::{decode, machine_state, netlab, root};
use serde_json::Value;

/// What one exercise's grading must show.
struct Expected {
    /// labs/exercises/NAME.rhai, its solutions in labs/exercises/NAME/solutions.
    name: &'static str,
    max_points: i64,
    /// The broken solution's file stem (it sorts before "reference").
    broken: &'static str,
    broken_points: i64,
    /// Task by task: passed or not, for the broken solution.
    broken_passed: &'static [bool],
    /// The first failed task (0-based), a text its hint contains and one its message contains.
    failed: usize,
    hint: &'static str,
    message: &'static str,
}

fn tasks(record: &Value) -> &Vec<Value> {
    record["tasks"].as_array().expect("tasks")
}

fn check(e: &Expected) {
    let exercise = root().join(format!("labs/exercises/{}.rhai", e.name));
    let solutions = root().join(format!("labs/exercises/{}/solutions", e.name));
    let before = machine_state();

    let grade =
        netlab().arg("grade").arg(&exercise).arg("--solution").arg(&solutions).args(["--format", "json"]).output();
    let (code, out, err) = decode(grade.expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    let records: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let records = records.as_array().expect("an array");
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, [e.broken, "reference"], "{}", e.name);

    let reference = &records[1];
    assert_eq!(reference["outcome"], "graded", "{reference}");
    assert_eq!(reference["solution_exit"], 0, "{reference}");
    assert_eq!(
        (reference["points"].as_i64(), reference["max_points"].as_i64()),
        (Some(e.max_points), Some(e.max_points))
    );
    assert_eq!(tasks(reference).len(), e.broken_passed.len(), "{reference}");
    for t in tasks(reference) {
        assert_eq!(t["passed"], true, "{}: {t}", e.name);
        assert_eq!(t["points"], t["max_points"], "{t}");
        assert!(t["hint"].is_null() && t["message"].is_null(), "{t}");
    }

    let broken = &records[0];
    assert_eq!(broken["outcome"], "graded", "{broken}");
    assert_eq!((broken["points"].as_i64(), broken["max_points"].as_i64()), (Some(e.broken_points), Some(e.max_points)));
    let passed: Vec<bool> = tasks(broken).iter().map(|t| t["passed"].as_bool().expect("passed")).collect();
    assert_eq!(passed, e.broken_passed, "{broken}");
    for (t, ok) in tasks(broken).iter().zip(e.broken_passed) {
        let earned = if *ok { t["max_points"].as_i64() } else { Some(0) };
        assert_eq!(t["points"].as_i64(), earned, "{t}");
        assert_eq!(t["hint"].is_null(), *ok, "a hint exactly for each failed task: {t}");
    }
    let failed = &tasks(broken)[e.failed];
    let hint = failed["hint"].as_str().expect("a hint for the failed task");
    assert!(hint.contains(e.hint), "{}: {hint}", e.name);
    let message = failed["message"].as_str().expect("a message");
    assert!(message.contains(e.message), "{}: {message}", e.name);

    // No solution: every task "not yet", each with its hint, exit 0.
    let (code, out, err) = decode(netlab().arg("run").arg(&exercise).output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("Score: 0/{} points", e.max_points)), "{out}");
    assert_eq!(out.matches("   hint: ").count(), e.broken_passed.len(), "{out}");
    assert!(out.contains("GRADED"), "{out}");

    // The model accepts it (no root, no kernel).
    let (code, out, err) = decode(netlab().arg("check").arg(&exercise).output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");

    assert_eq!(before, machine_state(), "grading {} changed the machine", e.name);
}

#[test]
fn veth_pair_reference_and_no_prefix_length() {
    check(&Expected {
        name: "veth_pair",
        max_points: 5,
        broken: "no_prefix_length",
        broken_points: 2,
        // the pair exists and both ends are up; the /32 addresses share no subnet, so no ping
        broken_passed: &[true, true, false, false],
        failed: 2,
        hint: "ip -n red addr add 192.168.15.1/24 dev veth-red",
        message: "red's 192.168.15.1/32 and blue's 192.168.15.2/32 are in one subnet",
    });
}

#[test]
fn bridge_host_reference_and_no_bridge_address() {
    check(&Expected {
        name: "bridge_host",
        max_points: 4,
        broken: "no_bridge_address",
        broken_points: 2,
        // both containers on br0, pinging each other; the host has no route to them
        broken_passed: &[true, true, false],
        failed: 2,
        hint: "ip addr add 10.201.0.1/24 brd 10.201.0.255 dev br0",
        message: "host pings 10.201.0.4",
    });
}

#[test]
fn nat_dns_reference_and_no_resolv_conf() {
    check(&Expected {
        name: "nat_dns",
        max_points: 4,
        broken: "no_resolv_conf",
        broken_points: 2,
        // NAT works by address; names fail, so curl google.com fails too
        broken_passed: &[true, false, false],
        failed: 1,
        hint: "echo 'nameserver 198.51.100.53' > /etc/netns/container4/resolv.conf",
        message: "nameserver 127.0.0.53: connection refused",
    });
    // The solutions' /etc/netns/container4 stayed in their sandboxes.
    assert!(!std::path::Path::new("/etc/netns/container4").exists());
}
