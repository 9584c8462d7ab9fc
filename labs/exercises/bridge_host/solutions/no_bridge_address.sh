#!/bin/bash
# The tutorial's commands up to the FORWARD policy: the containers ping each other, but
# br0 never gets 10.201.0.1/24, so the host has no route to 10.201.0.0/24 (its ping
# leaves by the default route, enp0s3, and is lost).
set -e
ip link add br0 type bridge
ip link set br0 up

ip netns add container4
ip link add brid4 type veth peer name veth4
ip link set veth4 netns container4
ip netns exec container4 ip a add 10.201.0.4/24 dev veth4
ip netns exec container4 ip link set dev lo up
ip netns exec container4 ip link set dev veth4 up
ip link set brid4 master br0
ip link set dev brid4 up

ip netns add container5
ip link add brid5 type veth peer name veth5
ip link set veth5 netns container5
ip netns exec container5 ip a add 10.201.0.5/24 dev veth5
ip netns exec container5 ip link set dev lo up
ip netns exec container5 ip link set dev veth5 up
ip link set brid5 master br0
ip link set dev brid5 up

iptables --policy FORWARD ACCEPT
