//! Firewall rules assert real outcomes: a server behind an input chain that
//! allows only tcp/80 answers on 80 and not on 8080; drop and reject end a probe
//! differently; without the rule line the check that depended on it fails (exit 1).
//! Rule files beside the lab (nft_file, iptables_restore) are loaded and listed back.

mod common;

use std::path::{Path, PathBuf};

/// A folder of its own per test, for the lab and the files beside it.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-firewall-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

const PAIR: &str = r#"
let c = netns("client");
let s = netns("server");
veth(c, "eth0", s, "eth0");
addr(c, "eth0", "10.0.0.1/24");
addr(s, "eth0", "10.0.0.2/24");
up(c, "eth0");
up(s, "eth0");
http_server(s, "0.0.0.0:80", "web");
http_server(s, "0.0.0.0:8080", "admin");
http_server(s, "0.0.0.0:8081", "other");
"#;

/// Only tcp/80 in (from the client's subnet on eth0), 8081 rejected, the rest dropped.
const ONLY_80: &str = r#"
step("only tcp/80 reaches the server", || {
    firewall_rule(s, #{chain: "input", proto: "tcp", dport: 80, iif: "eth0", src: "10.0.0.0/24", action: "accept"});   // break: accept-80
    firewall_rule(s, #{chain: "input", state: ["established", "related"], action: "accept"});
    firewall_rule(s, #{chain: "input", proto: "tcp", dport: 8081, action: "reject"});   // break: reject-8081
    input_policy(s, "drop");   // break: drop
    expect_http(c, "http://10.0.0.2/", #{body: "web"});   // needs: accept-80
    expect_no_http(c, "http://10.0.0.2:8080/", #{error: "silence"});   // needs: drop   // fix: input_policy(s, "accept");
    expect_no_http(c, "http://10.0.0.2:8081/", #{error: "refused"});   // needs: reject-8081   // fix: exec_in(s, "iptables -D INPUT -p tcp -m tcp --dport 8081 -j REJECT");
    expect_eq(iptables_rules(s, "filter"), [
        "-P INPUT DROP", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT",
        "-A INPUT -s 10.0.0.0/24 -i eth0 -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 8081 -j REJECT --reject-with icmp-port-unreachable",
    ], "iptables -S: the rules as written");
});
"#;

fn only_80() -> String {
    format!("{PAIR}{ONLY_80}")
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("line") + 1
}

#[test]
fn only_tcp_80_passes_the_input_chain() {
    let dir = folder("only80");
    let lab = write(&dir, "only80.rhai", &only_80());
    let (code, out, err) = common::run_lab(&lab, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Connection refused"), "reject answers 8081: {out}");
    assert!(out.contains("timed out"), "drop answers nothing on 8080: {out}");
    // The model lists the same rules as the kernel did.
    let out = common::netlab().arg("check").arg(&lab).output().expect("netlab check");
    let (code, out, err) = common::decode(out);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// Without the DROP policy, 8080 answers: the negative check fails at its line.
#[test]
fn without_the_drop_policy_the_negative_check_fails() {
    let text = only_80().replace("    input_policy(s, \"drop\");   // break: drop\n", "");
    let dir = folder("nodrop");
    let lab = write(&dir, "nodrop.rhai", &text);
    let (code, out, err) = common::run_lab(&lab, &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let at = line_of(&text, "http://10.0.0.2:8080/");
    assert!(err.contains(&format!("nodrop.rhai:{at}:")), "{err}");
}

/// Drop and reject are told apart by how the probe ended: requiring the other
/// reason fails the check.
#[test]
fn drop_and_reject_end_the_probe_differently() {
    for (from, to) in [
        (r#"8080/", #{error: "silence"}"#, r#"8080/", #{error: "refused"}"#),
        (r#"8081/", #{error: "refused"}"#, r#"8081/", #{error: "silence"}"#),
    ] {
        let text = only_80().replace(from, to);
        assert_ne!(text, only_80());
        let dir = folder("reasons");
        let lab = write(&dir, "reasons.rhai", &text);
        let (code, out, err) = common::run_lab(&lab, &[]);
        assert_eq!(code, 1, "{to}: {out}\n{err}");
    }
}

/// `admin-prohibited` is what ping reports as a firewall's answer.
#[test]
fn a_reject_with_admin_prohibited_is_a_prohibited_ping() {
    let text = format!(
        r#"{PAIR}
expect_ping(c, "10.0.0.2");
firewall_rule(s, #{{chain: "input", proto: "icmp", action: "reject", reject_with: "admin-prohibited"}});
expect_no_ping(c, "10.0.0.2", #{{error: "prohibited"}});
firewall_rule(c, #{{chain: "output", proto: "tcp", dport: 80, oif: "eth0", action: "drop"}});
expect_no_http(c, "http://10.0.0.2/", #{{error: "silence"}});
expect_http(c, "http://10.0.0.2:8080/");
"#
    );
    let dir = folder("prohibited");
    let lab = write(&dir, "prohibited.rhai", &text);
    let (code, out, err) = common::run_lab(&lab, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// Every check of the lab is shown to fail: `netlab prove` removes each break line.
#[test]
fn the_firewall_lab_proves_every_check() {
    let dir = folder("prove");
    let lab = write(&dir, "prove.rhai", &only_80());
    let out = common::netlab().arg("prove").arg(&lab).output().expect("netlab prove");
    let (code, out, err) = common::decode(out);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("5 of 5 cases proven"), "{out}\n{err}");
}

const OFFICE_NFT: &str = r#"table inet office {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    tcp dport 80 accept
  }
}
"#;

const RULES_V4: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
";

fn file_lab(load: &str, listing: &str) -> String {
    format!(
        r#"{PAIR}
expect_http(c, "http://10.0.0.2:8080/");
{load}
expect_http(c, "http://10.0.0.2/", #{{body: "web"}});
expect_no_http(c, "http://10.0.0.2:8080/", #{{error: "silence"}});
expect({listing}, "the file's rules are listed");
"#
    )
}

#[test]
fn nft_file_loads_the_file_beside_the_lab() {
    let dir = folder("nft");
    write(&dir, "office.nft", OFFICE_NFT);
    let text = file_lab(r#"nft_file(s, "office.nft");"#, r#"nft_ruleset(s).contains("table inet office")"#);
    let lab = write(&dir, "office.rhai", &text);
    let (code, out, err) = common::run_lab(&lab, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let rules = file_lab(
        r#"nft_file(s, "office.nft");"#,
        r#"iptables_rules(s, "filter").contains("-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT")"#,
    );
    let (code, out, err) = common::run_lab(&write(&dir, "rules.rhai", &rules), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Without the file's rules the negative check fails.
    let (code, out, err) = common::run_lab(&write(&dir, "none.rhai", &text.replace("nft_file", "// nft_file")), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
}

#[test]
fn iptables_restore_loads_the_file_beside_the_lab() {
    let dir = folder("restore");
    write(&dir, "rules.v4", RULES_V4);
    let text = file_lab(
        r#"iptables_restore(s, "rules.v4");"#,
        r#"iptables_rules(s, "filter") == ["-P INPUT DROP", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT", "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"] && nft_ruleset(s).contains("tcp dport 80")"#,
    );
    let lab = write(&dir, "restore.rhai", &text);
    let (code, out, err) = common::run_lab(&lab, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The exported script carries the file: it runs from anywhere.
    let out = common::netlab().arg("export").arg(&lab).output().expect("netlab export");
    let (code, script, err) = common::decode(out);
    assert_eq!(code, 0, "{err}");
    assert!(script.contains(RULES_V4), "{script}");
    let elsewhere = folder("restore-export");
    let sh = write(&elsewhere, "lab.sh", &script);
    let out = common::netlab().arg("sh").arg(&sh).current_dir(&elsewhere).output().expect("netlab sh");
    let (code, out, err) = common::decode(out);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn a_missing_or_invalid_rule_file_is_the_labs_mistake_at_its_line() {
    let dir = folder("bad-files");
    write(&dir, "bad.nft", "table inet bad {\n  chain input {\n    tcp dport 80 acept\n  }\n}\n");
    write(&dir, "bad.v4", "*filter\n-A INPUT -p tcp --dport 80 -j NOPE\nCOMMIT\n");
    for (call, said) in [
        (r#"nft_file(s, "bad.nft");"#, "bad.nft:3:"),
        (r#"iptables_restore(s, "bad.v4");"#, "Chain 'NOPE' does not exist"),
        (r#"nft_file(s, "missing.nft");"#, "cannot read missing.nft"),
        (r#"iptables_restore(s, "missing.v4");"#, "cannot read missing.v4"),
    ] {
        let text = format!("let s = netns(\"server\");\n\n{call}\n");
        let lab = write(&dir, "bad.rhai", &text);
        let (code, out, err) = common::run_lab(&lab, &[]);
        assert_eq!(code, 2, "{call}: {out}\n{err}");
        assert!(err.contains(said), "{call}: {err}");
        assert!(err.contains("bad.rhai:3:"), "{call}: {err}");
    }
}
