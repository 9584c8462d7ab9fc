#!/bin/bash
# The post's commands (seed 001, "2개의 다른 네임스페이스간의 통신"), with one fix: the post
# gives the addresses without a prefix length (a /32 each, and red -> blue is then
# "Network is unreachable"); /24 puts both ends in 192.168.15.0/24.
set -e
ip netns add red
ip netns add blue
ip link add veth-red type veth peer name veth-blue
ip link set veth-red netns red
ip link set veth-blue netns blue
ip -n red addr add 192.168.15.1/24 dev veth-red
ip -n blue addr add 192.168.15.2/24 dev veth-blue
ip -n red link set veth-red up
ip -n blue link set veth-blue up
ip netns exec red ping -c1 -W1 192.168.15.2
