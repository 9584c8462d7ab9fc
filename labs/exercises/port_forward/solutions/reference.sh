#!/bin/bash
# Seed 001's port forward, corrected (plain dashes, -p tcp, -j DNAT before
# --to-destination), for the host's port 8080; and the forwarding the seed never turns on.
set -e
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 192.168.15.2:80
