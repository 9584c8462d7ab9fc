#!/bin/bash
# The port forward of reference.sh, plus seed 001's MASQUERADE rule as printed:
# -s 192.168.15.0/2 is 192.0.0.0/2, which also holds the outside client 198.51.100.254,
# so its connection reaches blue masqueraded as the host's 192.168.15.5.
set -e
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 192.168.15.0/2 -j MASQUERADE
iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 192.168.15.2:80
