//! Breaking one load-bearing step of a lab (the lines tagged `// break: NAME`) makes
//! it fail with exit 1 at the check that depends on it: the labs' checks are real.

mod common;

use common::assert_breaks;

#[test]
fn netns_loopback_without_the_server() {
    assert_breaks("netns_loopback.rhai", "server", "expect_http(d, \"http://127.0.0.1/\"");
}

#[test]
fn netns_loopback_with_one_end_down() {
    assert_breaks("netns_loopback.rhai", "up", "expect_eq(link(host, \"veth0\").state, \"UP\"");
}

#[test]
fn veth_direct_with_one_end_down() {
    assert_breaks("veth_direct.rhai", "up", "veth2 is UP");
}

#[test]
fn bridge_forward_policy_left_at_drop() {
    assert_breaks("bridge.rhai", "accept", "expect_ping(c4, \"10.201.0.5\")");
}

#[test]
fn bridge_without_an_address_on_br0() {
    assert_breaks("bridge.rhai", "br0-address", "br0 has 10.201.0.1");
}

#[test]
fn bridge_nat_without_masquerade() {
    assert_breaks("bridge_nat.rhai", "nat", "expect_ping(c4, GOOGLE_DNS)");
}

#[test]
fn bridge_nat_without_the_default_route() {
    assert_breaks("bridge_nat.rhai", "route", "default via 10.201.0.1");
}

#[test]
fn bridge_nat_without_ip_forward() {
    assert_breaks("bridge_nat.rhai", "forward", "ip_forward is 1");
}

#[test]
fn bridge_nat_without_resolv_conf() {
    assert_breaks("bridge_nat.rhai", "dns", "expect_resolve(c4, \"google.com\")");
}

#[test]
fn red_blue_with_one_end_down() {
    assert_breaks("red_blue.rhai", "up", "expect_ping(red, \"192.168.15.2\")");
}

#[test]
fn red_blue_bridge_without_the_host_address() {
    assert_breaks("red_blue_bridge.rhai", "host-address", "expect_ping(host, \"192.168.15.1\")");
}

#[test]
fn red_blue_bridge_without_masquerade() {
    assert_breaks("red_blue_bridge.rhai", "nat", "expect_ping(blue, \"192.168.1.3\")");
}

#[test]
fn red_blue_bridge_without_ip_forward() {
    assert_breaks("red_blue_bridge.rhai", "forward", "expect_ping(blue, \"192.168.1.3\")");
}

#[test]
fn red_blue_bridge_without_dnat() {
    assert_breaks("red_blue_bridge.rhai", "dnat", "expect_http(lan, \"http://192.168.1.2/\"");
}

#[test]
fn red_blue_bridge_without_the_default_route() {
    assert_breaks("red_blue_bridge.rhai", "default", "expect_ping(blue, net.example_ip)");
}
