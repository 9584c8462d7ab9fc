//! Impairments: impair() puts tc's qdiscs on a link, read back from the kernel
//! (qdiscs(), and the real `tc qdisc show`), the model lists the same; bad options
//! are the lab's mistake at the line (exit 2); netem on a kernel without it is the
//! machine's (exit 3, naming CONFIG_NET_SCH_NETEM); --explain and plan show the tc
//! commands, the ping and the throughput probe.

mod common;

use common::{netlab, run_text};

const PAIR: &str = r#"
let a = netns("a");
let b = netns("b");
veth(a, "eth0", b, "eth0");
addr(a, "eth0", "10.0.0.1/24");
addr(b, "eth0", "10.0.0.2/24");
up(a, "eth0");
up(b, "eth0");
"#;

fn lab(body: &str) -> String {
    format!("{PAIR}{body}")
}

/// Whether this machine's kernel has netem (asked through netlab's own probe).
fn has_netem() -> bool {
    let (code, out, err) = run_text("impair_has_netem.rhai", r#"print(`netem=${has("netem")}`);"#);
    assert_eq!(code, 0, "{out}\n{err}");
    out.contains("netem=true")
}

#[test]
fn a_token_bucket_is_read_back_from_the_kernel_as_tc_shows_it() {
    // Odd numbers on purpose: the burst the kernel reports back goes through its
    // ticks of 64 ns; the model computes the same.
    let text = lab(r#"
impair(a, "eth0", #{rate: "7777kbit", burst: 3333, latency: "40ms"});
let q = qdiscs(a);
print(`qdiscs=${q}`);
expect_eq(q.len(), 1, "one qdisc of a's own");
expect_eq(q[0].kind, "tbf", "a token bucket");
expect_eq(q[0].dev, "eth0", "on eth0");
expect_eq(q[0].rate, 7777000, "its rate in bit/s");
expect(q[0].root, "at the root");
let shown = exec_in(a, "tc qdisc show dev eth0").stdout;
expect(shown.contains("tbf") && shown.contains("rate 7777Kbit"), `tc qdisc show: ${shown}`);
expect_eq(qdiscs(b), [], "b has none of its own");
impair(a, "eth0", #{rate: "10mbit"});
expect_eq(qdiscs(a).map(|q| `${q.rate} ${q.burst} ${q.limit} ${q.latency}`), ["10000000 12500 75000 50.0"], "replaced: 10 ms of burst, 50 ms of queue");
clear_impair(a, "eth0");
expect_eq(qdiscs(a), [], "gone");
expect(!exec_in(a, "tc qdisc show dev eth0").stdout.contains("tbf"), "tc shows no tbf any more");
"#);
    let (code, out, err) = run_text("impair_tbf.rhai", &text);
    assert_eq!(code, 0, "{out}\n{err}");
    let printed = |out: &str| out.lines().find(|l| l.contains("qdiscs=")).map(str::to_string).unwrap_or_default();
    let kernel = printed(&out);
    assert!(kernel.contains("\"burst\": 3333"), "{kernel}");
    // The model (netlab plan) lists exactly what the kernel did.
    let path = std::env::temp_dir().join(format!("netlab-impair-plan-{}.rhai", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let out = netlab().arg("plan").arg(&path).output().expect("netlab runs");
    let (code, planned, err) = common::decode(out);
    assert_eq!(code, 0, "{planned}\n{err}");
    assert_eq!(
        printed(&planned).trim_start_matches(|c: char| !c.is_ascii_alphanumeric()),
        kernel.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn netem_is_the_kernels_to_have_or_lack() {
    let text = lab(r#"
impair(a, "eth0", #{delay: "100ms", jitter: 5, loss: "1%", duplicate: 0.5, reorder: 25, rate: "10mbit", limit: 500});
let q = qdiscs(a)[0];
expect_eq([q.kind, q.delay, q.jitter, q.loss, q.duplicate, q.reorder, q.rate, q.limit], ["netem", 100.0, 5.0, 1.0, 0.5, 25.0, 10000000, 500], "netem as given");
expect_rtt(b, "10.0.0.1", #{min: 90});
"#);
    let (code, out, err) = run_text("impair_netem.rhai", &text);
    if has_netem() {
        assert_eq!(code, 0, "{out}\n{err}");
        return;
    }
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("CONFIG_NET_SCH_NETEM"), "{err}");
    assert!(err.contains("netlab::missing_kernel_feature"), "{err}");
    assert!(err.contains("a netem qdisc on eth0 in a"), "{err}");
    assert!(err.contains("impair_netem.rhai:10:"), "the span is at the impair() line:\n{err}");
    // Declared, it is a skip naming the option.
    let (code, out, err) = run_text("impair_netem_skip.rhai", &format!("requires(\"netem\");\n{text}"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("SKIP") && out.contains("CONFIG_NET_SCH_NETEM"), "{out}");
}

#[test]
fn bad_options_are_the_labs_mistake_at_the_line() {
    for (call, expected) in [
        (r#"impair(a, "eth0", #{delay: "100ms", lost: 1});"#, "unknown option \"lost\""),
        (r#"impair(a, "eth0", #{rate: 10});"#, "a rate is a string with its unit"),
        (r#"impair(a, "eth0", #{rate: "10mb"});"#, "unknown unit"),
        (r#"impair(a, "eth0", #{delay: "100"});"#, "needs its unit"),
        (r#"impair(a, "eth0", #{delay: -1});"#, "outside 0 to an hour"),
        (r#"impair(a, "eth0", #{loss: "101%"});"#, "outside 0% to 100%"),
        (r#"impair(a, "eth0", #{loss: true});"#, "must be a percentage"),
        (r#"impair(a, "eth0", #{jitter: "5ms"});"#, "give delay too"),
        (r#"impair(a, "eth0", #{reorder: "5%"});"#, "give a delay too"),
        (r#"impair(a, "eth0", #{delay: "5ms", burst: 5000});"#, "burst and latency are tbf's"),
        (r#"impair(a, "eth0", #{});"#, "nothing to impair"),
        (r#"impair(a, "eth9", #{rate: "1mbit"});"#, "no link named \"eth9\""),
        (r#"clear_impair(a, "eth0");"#, "has no qdisc of its own"),
        (r#"expect_rtt(a, "10.0.0.2", #{});"#, "give min, max or both"),
        (r#"expect_rtt(a, "10.0.0.2", #{min: 50, max: 10});"#, "is above max"),
        (r#"expect_throughput(a, "10.0.0.2", #{min: 5});"#, "a rate is a string with its unit"),
        (r#"expect_throughput(a, "10.0.0.2", #{min: "1mbit", seconds: 60});"#, "from 0.1 to 10"),
        (r#"throughput(a, "192.0.2.9");"#, "no node of the lab has the address 192.0.2.9"),
    ] {
        let text = lab(&format!("{call}\n"));
        let (code, out, err) = run_text("impair_bad.rhai", &text);
        assert_eq!(code, 2, "{call}: exit code\n{out}\n{err}");
        assert!(err.contains(expected), "{call}: expected {expected:?} in\n{err}");
        assert!(err.contains("impair_bad.rhai:9:"), "{call}: the span is at line 9:\n{err}");
        // The model (netlab check) finds the same mistake at the same line.
        let path = std::env::temp_dir().join(format!("netlab-impair-check-{}.rhai", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let (code, _, err) = common::decode(netlab().arg("check").arg(&path).output().expect("netlab runs"));
        assert_eq!(code, 2, "{call}: netlab check\n{err}");
        assert!(err.contains(expected), "{call}: netlab check: expected {expected:?} in\n{err}");
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn a_measured_rate_and_a_round_trip_can_fail() {
    let text = lab(r#"
step("too fast for the bound", || {
    expect_throughput(a, "10.0.0.2", #{max: "1mbit", seconds: 0.3});
});
"#);
    let (code, out, err) = run_text("impair_fail.rhai", &text);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("TCP from a to 10.0.0.2:5201: at most 1mbit"), "{err}");
    assert!(err.contains("Mbit/s"), "{err}");
    let text = lab(r#"
step("faster than claimed", || {
    expect_rtt(a, "10.0.0.2", #{min: 50, count: 3});
});
"#);
    let (code, out, err) = run_text("impair_fail_rtt.rhai", &text);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("round trip from a to 10.0.0.2: at least 50ms"), "{err}");
    assert!(err.contains("3 of 3 answered"), "{err}");
}

#[test]
fn explain_shows_tc_ping_and_the_sink() {
    let text = lab(r#"
impair(a, "eth0", #{delay: "100ms", jitter: "10ms", loss: "1%", rate: "10mbit"});
impair(b, "eth0", #{rate: "1mbit"});
expect_rtt(a, "10.0.0.2", #{min: 100, max: "150ms"});
expect_throughput(a, "10.0.0.2", #{min: "7mbit", max: "11mbit"});
clear_impair(b, "eth0");
"#);
    let path = std::env::temp_dir().join(format!("netlab-impair-explain-{}.rhai", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = common::decode(netlab().arg("plan").arg(&path).output().expect("netlab runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    for line in [
        "tc -n a qdisc replace dev eth0 root netem delay 100ms 10ms loss 1% rate 10mbit",
        "tc -n b qdisc replace dev eth0 root tbf rate 1mbit burst 4096 latency 50ms",
        "ip netns exec a ping -c 5 -i 0.1 10.0.0.2   # netlab checks: the median round trip is between 100ms and 150ms",
        "ip netns exec b iperf3 -s -1 -p 5201 &",
        "ip netns exec a iperf3 -c 10.0.0.2 -p 5201 -t 1   # netlab checks: the rate received is between 7mbit and 11mbit",
        "tc -n b qdisc del dev eth0 root",
    ] {
        assert!(out.contains(line), "expected {line:?} in\n{out}");
    }
    // The export runs the same: tc, ping, and the stand-in's sink and sender.
    let (code, script, err) = common::decode(netlab().arg("export").arg(&path).output().expect("netlab runs"));
    assert_eq!(code, 0, "{err}");
    for line in [
        "tc -n a qdisc replace dev eth0 root netem delay 100ms 10ms loss 1% rate 10mbit",
        "rtt_between 'round trip from a to 10.0.0.2: between 100ms and 150ms' 100 150 ip netns exec a ping -c 5 -i 0.1 -W 2 10.0.0.2",
        "ip netns exec b python3 \"$STANDIN/standin.py\" sink 0.0.0.0:5201 1 &",
        "rate_between 'TCP from a to 10.0.0.2:5201: between 7mbit and 11mbit' 7000000 11000000 ip netns exec a python3 \"$STANDIN/standin.py\" send 10.0.0.2:5201",
    ] {
        assert!(script.contains(line), "expected {line:?} in\n{script}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_export_leaves_the_same_qdiscs_as_the_run() {
    use netlab_runtime::snapshot::{diff, Snapshot};
    let dir = tempfile::Builder::new().prefix("netlab-impair-export-").tempdir().expect("temp dir");
    let path = dir.path().join("lab.rhai");
    // Odd numbers: tc computes the bucket's ticks and the queue from them as netlab does.
    std::fs::write(
        &path,
        lab(r#"
impair(a, "eth0", #{rate: "7777kbit", burst: 3333, latency: "40ms"});
impair(b, "eth0", #{rate: "1gbit"});
step("measured", || {
    expect_throughput(a, "10.0.0.2", #{max: "8mbit", seconds: 0.5});
    expect_rtt(a, "10.0.0.2", #{max: 100});
});
"#),
    )
    .unwrap();
    let state = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).expect("a state file");
        Snapshot::from_json(&text).expect("JSON")
    };
    let (code, out, err) = common::decode(
        netlab().arg("run").arg(&path).arg("--state").arg(dir.path().join("run.json")).output().unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, script, err) = common::decode(netlab().arg("export").arg(&path).output().unwrap());
    assert_eq!(code, 0, "{err}");
    let sh = dir.path().join("lab.sh");
    std::fs::write(&sh, script).unwrap();
    let (code, out, err) = common::decode(
        netlab()
            .env("NETLAB_KEEP", "1")
            .arg("sh")
            .arg(&sh)
            .arg("--state")
            .arg(dir.path().join("sh.json"))
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("PASS") && !out.contains("FAIL"), "{out}");
    let (run, exported) = (state("run.json"), state("sh.json"));
    assert_eq!(run.nodes["a"].qdiscs.len(), 1, "{run:?}");
    assert!(diff(&run, &exported).is_empty(), "{:?}", diff(&run, &exported));
}
