//! TCP probes: expect_tcp passes only when a handshake happens, expect_no_tcp only
//! when none does, and says why as curl would (refused, no route, unreachable).

mod common;

use common::{netlab, run_text};

const PAIR: &str = r#"
let a = netns("a");
let b = netns("b");
veth(a, "x", b, "y");
addr(a, "x", "10.0.0.1/24");
addr(b, "y", "10.0.0.2/24");
up(a, "x");
up(b, "y");
up(a, "lo");   // the kernel's own "No route to host" comes back over lo
"#;

#[test]
fn a_handshake_or_why_not() {
    let lab = format!(
        "{PAIR}http_server(b, \"10.0.0.2:80\", \"hi\");\n\
         expect_tcp(a, \"10.0.0.2:80\");\n\
         expect_no_tcp(a, \"10.0.0.2:81\", #{{error: \"refused\"}});\n\
         expect_no_tcp(a, \"10.0.0.9:80\", #{{error: \"host-unreachable\"}});\n\
         expect_no_tcp(a, \"10.9.0.9:80\", #{{error: \"unreachable\"}});\n"
    );
    let (code, out, err) = run_text("tcp.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("✓ a connects to 10.0.0.2:80: handshake in "), "{out}");
    assert!(out.contains("Failed to connect to 10.0.0.2 port 81: Connection refused"), "{out}");
    assert!(out.contains("Failed to connect to 10.0.0.9 port 80: No route to host"), "{out}");
    assert!(out.contains("Failed to connect to 10.9.0.9 port 80: Network is unreachable"), "{out}");

    // Without the server, the positive check fails at its line.
    let (code, out, err) =
        run_text("noserver.rhai", &format!("{PAIR}expect_tcp(a, \"10.0.0.2:80\", #{{timeout: 0.3}});\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("Connection refused") && err.contains("noserver.rhai:10"), "{err}");

    // With the port open, the negative one fails; with a wrong reason too.
    let open = format!("{PAIR}http_server(b, \"10.0.0.2:80\", \"hi\");\nexpect_no_tcp(a, \"10.0.0.2:80\");\n");
    let (code, out, err) = run_text("open.rhai", &open);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("the handshake succeeded"), "{err}");
    let (code, out, err) =
        run_text("reason.rhai", &format!("{PAIR}expect_no_tcp(a, \"10.0.0.2:81\", #{{error: \"silence\"}});\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("not for the reason silence"), "{err}");
}

#[test]
fn a_bad_target_is_the_labs_mistake_and_plan_shows_nc() {
    let (code, out, err) = run_text("bad.rhai", &format!("{PAIR}expect_tcp(a, \"10.0.0.2\");\n"));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("is not an address and port"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcp.rhai");
    std::fs::write(&path, format!("{PAIR}expect_no_tcp(a, \"[fd00::2]:8080\");\n")).unwrap();
    let out = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ip netns exec a nc -z -w1 fd00::2 8080"), "{text}");
}
