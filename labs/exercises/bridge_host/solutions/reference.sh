#!/bin/bash
# The tutorial's commands (seed 003, "브리지 네트워크1: 브리지로 컨테이너들 연결하기"), in its order:
# br0, container4, container5, the FORWARD policy, then br0's address for the host.
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

# Docker's box drops what it forwards, bridged frames included: container4 gets no answer
# from container5 until the policy is ACCEPT.
iptables -L | grep FORWARD
iptables --policy FORWARD ACCEPT

# The host has no route to 10.201.0.0/24 until br0 has an address there.
ip addr add 10.201.0.1/24 brd 10.201.0.255 dev br0
