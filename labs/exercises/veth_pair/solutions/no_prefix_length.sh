#!/bin/bash
# The post's commands exactly as printed: the addresses have no prefix length, so each
# is a /32 and red has no route to blue (its ping: "Network is unreachable").
ip netns add red
ip netns add blue
ip link add veth-red type veth peer name veth-blue
ip link set veth-red netns red
ip link set veth-blue netns blue
ip -n red addr add 192.168.15.1 dev veth-red
ip -n blue addr add 192.168.15.2 dev veth-blue
ip -n red link set veth-red up
ip -n blue link set veth-blue up
ip netns exec red ping -c1 -W1 192.168.15.2
