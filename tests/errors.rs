//! Bad labs fail with a clear diagnostic that shows the offending source line, the
//! right exit code, and nothing left behind.

mod common;

use common::{machine_state, run_text};

/// Asserts exit `code`, the error `code_name` and that the highlighted snippet
/// contains `line` (the source line, as miette prints it) and `needle`.
fn fails(name: &str, text: &str, code: i32, code_name: &str, line: &str, needle: &str) -> String {
    let before = machine_state();
    let (got, out, err) = run_text(name, text);
    assert_eq!(got, code, "exit code for {name}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains(code_name), "{name}: no {code_name} in\n{err}");
    assert!(err.contains(line), "{name}: source line {line:?} not shown in\n{err}");
    assert!(err.contains(needle), "{name}: {needle:?} not in\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(before, machine_state(), "{name} changed the machine");
    err
}

#[test]
fn syntax_error() {
    fails(
        "syntax.rhai",
        "let a = netns(\"a\");\nstep(\"x\", || {\n  veth(a, \"v0\", a, \"v1\"\n});\n",
        2,
        "netlab::parse",
        "veth(a, \"v0\", a, \"v1\"",
        "syntax error",
    );
}

#[test]
fn bad_cidr() {
    fails(
        "cidr.rhai",
        "let a = netns(\"a\");\nveth(a, \"v0\", \"v1\");\naddr(a, \"v0\", \"10.0.0.300/24\");\n",
        2,
        "netlab::bad_address",
        "3 │ addr(a, \"v0\", \"10.0.0.300/24\");",
        "invalid address/prefix",
    );
}

#[test]
fn address_without_prefix_names_the_trap() {
    fails(
        "noprefix.rhai",
        "let a = netns(\"a\");\nveth(a, \"v0\", \"v1\");\naddr(a, \"v0\", \"192.168.15.1\");\n",
        2,
        "netlab::bad_address",
        "addr(a, \"v0\", \"192.168.15.1\")",
        "/32",
    );
}

#[test]
fn sixteen_byte_interface_name() {
    fails(
        "name.rhai",
        "let a = netns(\"a\");\nstep(\"make\", || {\n    veth(a, \"sixteen_bytes_xx\", \"v1\");\n});\n",
        2,
        "netlab::bad_name",
        "3 │     veth(a, \"sixteen_bytes_xx\", \"v1\");",
        "16 bytes",
    );
}

#[test]
fn unknown_node() {
    let err = fails(
        "node.rhai",
        "let a = netns(\"a\");\nup(\"nosuch\", \"lo\");\n",
        2,
        "netlab::no_such_node",
        "up(\"nosuch\", \"lo\")",
        "nosuch",
    );
    assert!(err.contains("nodes: a, host"), "{err}");
}

#[test]
fn unknown_link_lists_the_known_ones() {
    let err = fails(
        "link.rhai",
        "let a = netns(\"a\");\nup(a, \"eth0\");\n",
        2,
        "netlab::no_such_link",
        "up(a, \"eth0\")",
        "eth0",
    );
    assert!(err.contains("links in a: lo"), "{err}");
}

#[test]
fn unknown_function_is_found_before_anything_runs() {
    let (code, out, err) =
        run_text("fn.rhai", "let a = netns(\"a\");\nstep(\"s\", || {});\nexpect_pnig(a, \"10.0.0.1\");\n");
    assert_eq!(code, 2);
    assert!(err.contains("netlab::unknown_function") && err.contains("did you mean expect_ping()?"), "{err}");
    // Linted before the lab ran: no step was executed.
    assert!(!out.contains("── 1."), "{out}");
}

#[test]
fn wrong_argument_types() {
    fails(
        "args.rhai",
        "let a = netns(\"a\");\naddr(a, 5, \"10.0.0.1/24\");\n",
        2,
        "netlab::arg_type",
        "addr(a, 5,",
        "usage: addr(node",
    );
}

#[test]
fn kernel_error_names_node_and_object() {
    fails(
        "exists.rhai",
        "let a = netns(\"a\");\nveth(a, \"x\", \"y\");\nveth(a, \"x\", \"z\");\n",
        2,
        "netlab::kernel",
        "3 │ veth(a, \"x\", \"z\");",
        "creating veth x in a: File exists",
    );
}

#[test]
fn duplicate_node() {
    fails("dup.rhai", "netns(\"a\");\nnetns(\"a\");\n", 2, "netlab::node_exists", "netns(\"a\")", "already exists");
}

#[test]
fn missing_program() {
    fails(
        "prog.rhai",
        "let a = netns(\"a\");\nexec_in(a, \"nosuchprog --x\");\n",
        2,
        "netlab::program_not_found",
        "exec_in(a,",
        "nosuchprog",
    );
}

#[test]
fn exec_timeout_is_an_error_not_a_hang() {
    fails(
        "slow.rhai",
        "let a = netns(\"a\");\nexec_in(a, \"sleep 30\", #{timeout: 0.3});\n",
        2,
        "netlab::timeout",
        "exec_in(a, \"sleep 30\"",
        "did not finish",
    );
}

#[test]
fn only_net_sysctls() {
    fails(
        "sysctl.rhai",
        "sysctl(host(), \"kernel.hostname\", \"x\");\n",
        2,
        "netlab::bad_sysctl",
        "kernel.hostname",
        "net.*",
    );
}

#[test]
fn failed_check_exits_1_and_names_the_line_and_step() {
    let text = "let a = netns(\"a\");\nlet b = netns(\"b\");\nveth(a, \"x\", b, \"y\");\naddr(a, \"x\", \"10.0.0.1/24\");\naddr(b, \"y\", \"10.0.0.2/24\");\nstep(\"up only one\", || {\n    up(a, \"x\");\n    expect_ping(a, \"10.0.0.2\", #{timeout: 0.5});\n});\nstep(\"never reached\", || {});\n";
    let err = fails(
        "wrong.rhai",
        text,
        1,
        "netlab::check_failed",
        "8 │     expect_ping(a, \"10.0.0.2\", #{timeout: 0.5});",
        "no reply",
    );
    assert!(err.contains("x has no carrier"), "the hint explains why: {err}");
    let (_, out, _) = run_text("wrong.rhai", text);
    assert!(out.contains("FAIL") && out.contains("step 1. up only one at line 8"), "{out}");
    assert!(!out.contains("never reached"), "{out}");
}

#[test]
fn negative_check_that_gets_replies_fails() {
    let text = "let a = netns(\"a\");\nup(a, \"lo\");\nexpect_no_ping(a, \"127.0.0.1\");\n";
    fails("neg.rhai", text, 1, "netlab::check_failed", "expect_no_ping(a, \"127.0.0.1\")", "were answered");
}

#[test]
fn thrown_error_is_a_script_error() {
    fails("throw.rhai", "throw \"the lab gave up\";\n", 2, "netlab::thrown", "throw", "the lab gave up");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = common::decode(common::netlab().args(["run", "/nonexistent/lab.rhai"]).output().unwrap());
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, _) = common::decode(common::netlab().args(["frobnicate"]).output().unwrap());
    assert_eq!(code, 2);
    let (code, _, err) = common::decode(common::netlab().args(["run", "x.rhai", "--set", "bad"]).output().unwrap());
    assert_eq!(code, 2, "{err}");
}

#[test]
fn negative_check_with_the_wrong_reason_fails() {
    // No route at all: the kernel says "Network is unreachable", not silence.
    let text = "let a = netns(\"a\");\nexpect_no_ping(a, \"10.9.9.9\", #{error: \"\"});\n";
    fails(
        "reason.rhai",
        text,
        1,
        "netlab::check_failed",
        "expect_no_ping(a, \"10.9.9.9\"",
        "not for the reason silence",
    );
    let text = "let a = netns(\"a\");\nexpect_no_ping(a, \"10.9.9.9\", #{error: \"Network is unreachable\"});\n";
    let (code, out, err) = run_text("reason-ok.rhai", text);
    assert_eq!(code, 0, "{out}{err}");
}

/// A new veth is created together with its master and up state (one request), so its
/// own failure comes later: the diagnostic still points at the veth() line, in a
/// step, and at the lab's end.
#[test]
fn a_veth_that_fails_late_is_reported_at_its_line() {
    let err = fails(
        "veth_late.rhai",
        "let a = netns(\"a\");\nveth(a, \"x\", host(), \"h0\");\nbridge(host(), \"br0\");\nstep(\"twice\", || {\n  veth(a, \"x\", host(), \"h1\");\n  master(host(), \"h1\", \"br0\");\n  up(host(), \"h1\");\n});\n",
        2,
        "netlab::kernel",
        "veth(a, \"x\", host(), \"h1\");",
        "creating veth x in a: File exists",
    );
    assert!(err.contains("veth_late.rhai:5:"), "the span is on line 5:\n{err}");
    let err = fails(
        "veth_last.rhai",
        "let a = netns(\"a\");\nveth(a, \"x\", host(), \"h0\");\nveth(a, \"x\", host(), \"h1\");\n",
        2,
        "netlab::kernel",
        "veth(a, \"x\", host(), \"h1\");",
        "File exists",
    );
    assert!(err.contains("veth_last.rhai:3:"), "the span is on line 3:\n{err}");
}

/// sh() is exec_in for commands that must work: its stdout comes back, and a
/// failure stops the lab at the line with the command's own words (exit 2).
#[test]
fn sh_returns_stdout_and_a_failing_command_stops_the_lab_at_its_line() {
    let (code, out, err) = common::run_text(
        "sh.rhai",
        "let a = netns(\"a\");\nlet out = sh(a, \"ip -br link show lo\");\nexpect(out.contains(\"LOOPBACK\"), \"sh returns stdout\");\nsh(a, \"ip link set nosuch up\");\nprint(\"not reached\");\n",
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.contains("✓ sh returns stdout"), "{out}");
    assert!(!out.contains("not reached"), "{out}");
    assert!(err.contains("`ip link set nosuch up` in a failed with exit status 1"), "{err}");
    assert!(err.contains("Cannot find device \"nosuch\""), "the command's stderr: {err}");
    assert!(err.contains("sh.rhai:4:1"), "{err}");
    assert!(err.contains("exec_in()"), "the help names exec_in: {err}");

    // exec_in of the same command does not stop the lab: it reports the code.
    let (code, out, err) = common::run_text(
        "exec.rhai",
        "let a = netns(\"a\");\nlet r = exec_in(a, \"ip link set nosuch up\");\nexpect_eq(r.code, 1, \"exec_in reports the code\");\n",
    );
    assert_eq!(code, 0, "{out}\n{err}");
}
