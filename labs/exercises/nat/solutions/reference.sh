#!/bin/bash
# The tutorial's commands (seed 003, "브리지 네트워크2: NAT 구성을 통해 인터넷에 연결"), for container4.
set -e
ip netns add container4
ip link add br0 type bridge
ip link set br0 up
ip addr add 10.201.0.1/24 brd 10.201.0.255 dev br0
ip link add brid4 type veth peer name veth4
ip link set veth4 netns container4
ip netns exec container4 ip a add 10.201.0.4/24 dev veth4
ip netns exec container4 ip link set dev lo up
ip netns exec container4 ip link set dev veth4 up
ip link set brid4 master br0
ip link set dev brid4 up
ip netns exec container4 ip route add default via 10.201.0.1
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE
# As the tutorial checks it: the page comes through the NAT.
ip netns exec container4 curl -s -m 3 http://203.0.113.10/ | grep "Example Domain"
