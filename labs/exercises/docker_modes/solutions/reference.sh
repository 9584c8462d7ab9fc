#!/bin/bash
# Docker's three network modes by hand (seed 002), with what dockerd makes (seed 000).
set -e
# none: a namespace of its own with only lo (docker brings it up)
ip netns add isolated
ip netns exec isolated ip link set lo up
# bridge: docker0, forwarding and docker's MASQUERADE rule; a container web on docker0
ip link add docker0 type bridge
ip addr add 172.17.0.1/16 dev docker0
ip link set docker0 up
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
ip netns add web
ip link add veth0a1b2c3 type veth peer name eth0 netns web
ip link set veth0a1b2c3 master docker0
ip link set veth0a1b2c3 up
ip netns exec web ip addr add 172.17.0.2/16 dev eth0
ip netns exec web ip link set eth0 up
ip netns exec web ip link set lo up
ip netns exec web ip route add default via 172.17.0.1
# host: a container's process with its own UTS and PID namespaces, the host's network one
mkdir -p /tmp/hostnet-www
echo "host-mode app" > /tmp/hostnet-www/index.html
unshare --uts --pid --fork sh -c 'hostname hostnet; exec python3 -m http.server 8000 --directory /tmp/hostnet-www' > /tmp/hostnet.log 2>&1 &
for i in $(seq 50); do
    curl -s http://198.51.100.1:8000/ && break
    sleep 0.1
done
