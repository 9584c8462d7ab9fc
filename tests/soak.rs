//! The kill soak's short form (benches/soak.sh, documented in benches/README.md):
//! 30 SIGKILLs of `netlab run` at random moments of three labs' runs, the first
//! 10 ms and the never-ending lab included; after each the machine's links,
//! namespaces, nft ruleset, mounts, /etc, /root, netlab's /tmp entries and
//! processes must be as before. The full soak (1000 kills, every lab) is run by hand.

mod common;

#[test]
fn thirty_kills_at_random_moments_leave_nothing() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = std::process::Command::new(common::root().join("benches/soak.sh"))
        .args(["-n", "30", "-s", &seed.to_string(), "-b", env!("CARGO_BIN_EXE_netlab")])
        .args(["-l", "labs/veth_direct.rhai labs/bridge.rhai spin"])
        .output()
        .expect("benches/soak.sh runs");
    let (code, stdout, stderr) = common::decode(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("soak: 30 kills (") && summary.contains("leftovers: 0;"), "{stdout}{stderr}");
}
