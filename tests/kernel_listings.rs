//! `iptables_rules()` reads the kernel: every rule in the node, as the real
//! `iptables -S` prints it, whoever made it.

mod common;

use common::run_text;

fn passes(name: &str, text: &str) -> String {
    let (code, out, err) = run_text(name, text);
    assert_eq!(code, 0, "{name}:\n{out}\n{err}");
    out
}

#[test]
fn flushed_rules_are_gone_from_the_listing() {
    let text = r#"
let host = host();
masquerade(host, "10.201.0.0/24");
expect(iptables_rules(host, "nat").contains("-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"), "listed while in the kernel");
exec_in(host, "nft flush ruleset");
expect(iptables_rules(host, "nat").contains("-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"), "iptables -t nat -S shows the rule");
"#;
    let (code, out, err) = run_text("flushed.rhai", text);
    assert_eq!(code, 1, "a check on a flushed rule must fail:\n{out}\n{err}");
    assert!(err.contains("netlab::check_failed"), "{err}");
    assert!(out.contains("iptables -t nat -S shows the rule") && out.contains("at line 6"), "{out}");
}

/// Rules made with the real iptables inside the node list exactly as the real
/// `iptables -S` prints them, and next to netlab's own.
#[test]
fn rules_made_with_iptables_list_as_iptables_prints_them() {
    let out = passes(
        "iptables-made.rhai",
        r#"
let host = host();
for cmd in [
    "iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE",
    "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    "iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80",
    "iptables -t nat -A OUTPUT -m addrtype --dst-type LOCAL -p tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80",
    "iptables -P FORWARD DROP",
    "iptables -A FORWARD -s 10.201.0.0/24 -d 10.201.0.5 -i br0 -o br0 -j ACCEPT",
    "iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
] {
    expect_eq(exec_in(host, cmd).code, 0, cmd);
}
for table in ["nat", "filter"] {
    let real = exec_in(host, `iptables -t ${table} -S`).stdout.split("\n").filter(|l| l != "");
    expect_eq(iptables_rules(host, table), real, `iptables -t ${table} -S, line for line`);
}
let nat = iptables_rules(host, "nat");
expect(nat.contains("-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80"), "the DNAT rule");
expect(nat.contains("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"), "docker's MASQUERADE rule");
let filter = iptables_rules(host, "filter");
expect(filter.contains("-P FORWARD DROP"), "the FORWARD policy");
expect(filter.contains("-A FORWARD -s 10.201.0.0/24 -d 10.201.0.5/32 -i br0 -o br0 -j ACCEPT"), "the accept rule");

// netlab's own rules join the listing; iptables' own listing does not have them.
masquerade(host, "10.202.0.0/24");
let nat = iptables_rules(host, "nat");
expect(nat.contains("-A POSTROUTING -s 10.202.0.0/24 -j MASQUERADE"), "netlab's rule is listed too");
expect(nat.contains("-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"), "and the iptables one still");
print(`nat=${nat.len()}`);
"#,
    );
    assert!(out.contains("nat=9"), "{out}");
}

#[test]
fn netlab_forward_policy_is_listed() {
    passes(
        "policy.rhai",
        r#"
let host = host();
expect(iptables_rules(host, "filter").contains("-P FORWARD ACCEPT"), "no chain: ACCEPT");
forward_policy(host, "drop");
expect(iptables_rules(host, "filter").contains("-P FORWARD DROP"), "iptables -S: -P FORWARD DROP");
expect_eq(exec_in(host, "nft list ruleset").stdout.contains("policy drop"), true, "the kernel holds it");
forward_policy(host, "accept");
expect(iptables_rules(host, "filter").contains("-P FORWARD ACCEPT"), "iptables -S: -P FORWARD ACCEPT");
"#,
    );
}
