#!/bin/bash
# The tutorial's complete script (seed 003, "브릿지 네트워크3: 브리지 네크워크 구성부터 NAT
# 셋업까지 총 정리"), with one change: the lab's DNS server 198.51.100.53 stands for the
# tutorial's 8.8.8.8 (no packet leaves the sandbox). Its `ip netns exec container4 curl
# google.com` is the grading's task 3.
set -e
# 브릿지 생성 및 셋업
ip link add br0 type bridge
ip link set br0 up
ip addr add 10.201.0.1/24 brd 10.201.0.255 dev br0
iptables --policy FORWARD ACCEPT

# container4 네트워크 네임스페이스 셋업
ip netns add container4
ip link add brid4 type veth peer name veth4
ip link set veth4 netns container4
ip netns exec container4 ip a add 10.201.0.4/24 dev veth4
ip netns exec container4 ip link set dev lo up
ip netns exec container4 ip link set dev veth4 up
ip link set brid4 master br0
ip link set dev brid4 up
ip netns exec container4 ip route add default via 10.201.0.1

# container5 네트워크 네임스페이스 셋업
ip netns add container5
ip link add brid5 type veth peer name veth5
ip link set veth5 netns container5
ip netns exec container5 ip a add 10.201.0.5/24 dev veth5
ip netns exec container5 ip link set dev lo up
ip netns exec container5 ip link set dev veth5 up
ip link set brid5 master br0
ip link set dev brid5 up
ip netns exec container5 ip route add default via 10.201.0.1

# NAT 및 DNS 셋업
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE
mkdir -p /etc/netns/container4/
echo 'nameserver 198.51.100.53' > /etc/netns/container4/resolv.conf
mkdir -p /etc/netns/container5/
echo 'nameserver 198.51.100.53' > /etc/netns/container5/resolv.conf
