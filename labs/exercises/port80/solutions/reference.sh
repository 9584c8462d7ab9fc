#!/bin/bash
# Two namespaces, each with a web server on port 80 (seed 004), joined to the host as in
# seed 003; each waits for its server the way a student would: curl until it answers.
set -e
for n in 1 2; do
    ip netns add ns$n
    ip link add veth$n type veth peer name eth0 netns ns$n
    ip addr add 10.0.$n.1/24 dev veth$n
    ip link set veth$n up
    ip netns exec ns$n ip addr add 10.0.$n.2/24 dev eth0
    ip netns exec ns$n ip link set eth0 up
    ip netns exec ns$n ip link set lo up
    mkdir -p /tmp/ns$n-www
    echo "hello from ns$n" > /tmp/ns$n-www/index.html
    ip netns exec ns$n python3 -m http.server 80 --directory /tmp/ns$n-www > /tmp/ns$n-www.log 2>&1 &
done
for n in 1 2; do
    for i in $(seq 50); do
        curl -s http://10.0.$n.2/ && break
        sleep 0.1
    done
done
