#!/bin/bash
# The DNAT rule without --dport 8080: every TCP port of the host goes to blue's port 80,
# the host's own port 80 too.
set -e
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A PREROUTING -p tcp -j DNAT --to-destination 192.168.15.2:80
