//! The service exercises (labs/exercises/port_forward, docker_modes, port80): each
//! exercise's solutions folder is graded once, as a teacher would grade a class. The
//! reference solution scores full marks; each broken one exactly the points of the tasks
//! its mistake leaves standing, with the failed tasks' first hints. Real servers a
//! solution starts in the background (python3 -m http.server) die with its sandbox.

mod common;

use std::time::{Duration, Instant};

use common::{decode, machine_state, netlab, root};
use serde_json::Value;

/// `netlab grade labs/exercises/NAME.rhai --solution labs/exercises/NAME/solutions
/// --format json`: the records by student name.
fn grade(name: &str) -> Vec<Value> {
    let exercise = root().join(format!("labs/exercises/{name}.rhai"));
    let solutions = root().join(format!("labs/exercises/{name}/solutions"));
    let out = netlab()
        .arg("grade")
        .arg(&exercise)
        .arg("--solution")
        .arg(&solutions)
        .args(["--format", "json"])
        .output()
        .expect("netlab runs");
    let (code, out, err) = decode(out);
    assert_eq!(code, 0, "{out}\n{err}");
    let records: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {out}"));
    records.as_array().expect("an array").clone()
}

fn student<'a>(records: &'a [Value], name: &str) -> &'a Value {
    records.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no record for {name}: {records:?}"))
}

/// The student's points, and which tasks passed, in order.
fn score(record: &Value) -> (i64, Vec<bool>) {
    assert_eq!(record["outcome"], "graded", "{record}");
    assert_eq!(record["solution_exit"], 0, "{record}");
    let passed = record["tasks"].as_array().expect("tasks").iter().map(|t| t["passed"].as_bool().expect("passed"));
    (record["points"].as_i64().expect("points"), passed.collect())
}

fn full_marks(record: &Value, max: i64) {
    assert_eq!(record["max_points"], max, "{record}");
    let (points, passed) = score(record);
    assert_eq!(points, max, "{record}");
    assert!(passed.iter().all(|p| *p), "{record}");
    for t in record["tasks"].as_array().expect("tasks") {
        assert!(t["hint"].is_null() && t["message"].is_null(), "{t}");
    }
}

/// Task `i` (from 0) failed: its message and its first hint contain these texts.
fn failed(record: &Value, i: usize, message: &str, hint: &str) {
    let t = &record["tasks"][i];
    assert_eq!(t["passed"], false, "{t}");
    assert_eq!(t["points"], 0, "{t}");
    assert!(t["message"].as_str().expect("a message").contains(message), "{t}");
    assert!(t["hint"].as_str().expect("a hint").starts_with(hint), "{t}");
}

/// Live processes (not zombies) on this machine whose command line contains `marker`.
fn live_processes(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        if cmdline.contains(marker) && !zombie {
            found.push(format!("{}: {cmdline}", path.display()));
        }
    }
    found
}

/// No server a solution started outlives the grading (the machine is slow to reap).
fn no_server_left(markers: &[&str]) {
    let started = Instant::now();
    loop {
        let left: Vec<String> = markers.iter().flat_map(|m| live_processes(m)).collect();
        if left.is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn port_forward_reference_and_two_mistakes() {
    let before = machine_state();
    let records = grade("port_forward");
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["all_ports", "masquerade_slash2", "reference"]);
    full_marks(student(&records, "reference"), 4);

    // Seed 001's MASQUERADE -s 192.168.15.0/2 also holds the client: blue sees the host.
    let slash2 = student(&records, "masquerade_slash2");
    assert_eq!(score(slash2), (3, vec![true, false, true]), "{slash2}");
    failed(
        slash2,
        1,
        "expected \"198.51.100.254\", got \"192.168.15.5\"",
        "blue's server must see 198.51.100.254 itself",
    );
    assert!(slash2["tasks"][1]["hint"].as_str().expect("hint").contains("-s 192.168.15.0/24"), "{slash2}");

    // DNAT without --dport: the host's own port 80 goes to blue too.
    let all = student(&records, "all_ports");
    assert_eq!(score(all), (3, vec![true, true, false]), "{all}");
    failed(
        all,
        2,
        "internet curl http://198.51.100.1/: the body does not contain \"the host's own page\"",
        "a DNAT rule without --dport 8080",
    );
    assert_eq!(before, machine_state(), "grading changed the machine");
}

#[test]
fn docker_modes_reference_and_host_mode_in_a_netns_of_its_own() {
    let before = machine_state();
    let records = grade("docker_modes");
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["own_netns", "reference"]);
    full_marks(student(&records, "reference"), 6);

    // The host-mode server started with unshare --net: not in the host's namespace.
    let own = student(&records, "own_netns");
    assert_eq!(score(own), (4, vec![true, true, true, false]), "{own}");
    failed(
        own,
        3,
        "the host's network namespace has a socket listening on TCP port 8000",
        "host mode shares the host's network namespace",
    );
    assert_eq!(own["tasks"][3]["max_points"], 2, "{own}");
    no_server_left(&["/tmp/hostnet-www"]);
    assert_eq!(before, machine_state(), "grading changed the machine");
}

#[test]
fn port80_reference_and_two_mistakes() {
    let before = machine_state();
    let records = grade("port80");
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["no_netns_exec", "reference", "same_directory"]);
    full_marks(student(&records, "reference"), 3);

    // Copied and pasted: ns2 serves ns1's page, which the check tells apart.
    let same = student(&records, "same_directory");
    assert_eq!(score(same), (2, vec![true, false, true]), "{same}");
    failed(same, 1, "the body does not contain \"ns2\": \"hello from ns1", "ns2 needs a server of its own");

    // ns2's server started without ip netns exec: it took the host's port 80.
    let host = student(&records, "no_netns_exec");
    assert_eq!(score(host), (1, vec![true, false, false]), "{host}");
    failed(
        host,
        1,
        "host curl http://10.0.2.2/: Failed to connect to 10.0.2.2 port 80: Connection refused",
        "ns2 needs a server of its own",
    );
    failed(host, 2, "the host's own port 80 is free", "a server started without `ip netns exec NS`");
    assert!(host["tasks"][2]["message"].as_str().expect("message").contains("got [\"0.0.0.0:80\"]"), "{host}");
    no_server_left(&["/tmp/ns1-www", "/tmp/ns2-www"]);
    assert_eq!(before, machine_state(), "grading changed the machine");
}
