//! The docker labs (seeds 000, 002, 004) with one load-bearing step removed (the lines
//! tagged `// break: NAME`) fail with exit 1 at the check that depends on it.

mod common;

use common::assert_breaks;

#[test]
fn docker0_without_the_uplink() {
    // No uplink, no default route: the container's packets have nowhere to go.
    assert_breaks("docker0.rhai", "uplink", "expect_ping(containers[0], EXAMPLE)");
}

#[test]
fn docker0_without_the_server_in_db() {
    // The container-to-container check needs a server to talk to.
    assert_breaks("docker0.rhai", "server", "expect_http(web, `http://${docker::ip(db)}/`");
}

#[test]
fn docker_modes_without_the_host_mode_server() {
    assert_breaks("docker_modes.rhai", "host-server", "expect_http(inet.node, `http://${inet.host_ip}:8080/`");
}

#[test]
fn docker_modes_without_moving_veth01() {
    assert_breaks("docker_modes.rhai", "move", "the host no longer has veth01");
}

#[test]
fn port_reuse_without_the_server_in_ns1() {
    assert_breaks("port_reuse.rhai", "server", "expect_http(c, \"http://127.0.0.1/\"");
}

#[test]
fn port_reuse_without_a_hostname_for_ns1() {
    assert_breaks("port_reuse.rhai", "hostname", "expect_eq(out, `web${n}`");
}

#[test]
fn port_reuse_with_ns1_eth0_down() {
    assert_breaks("port_reuse.rhai", "up", "expect_ping(host, \"10.0.1.2\")");
}
