#!/bin/bash
# As reference.sh, but ns2's server is started without `ip netns exec ns2`: it runs in
# the host's namespace, on the host's port 80, and ns2 has no server.
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
done
ip netns exec ns1 python3 -m http.server 80 --directory /tmp/ns1-www > /tmp/ns1-www.log 2>&1 &
python3 -m http.server 80 --directory /tmp/ns2-www > /tmp/ns2-www.log 2>&1 &
for url in http://10.0.1.2/ http://127.0.0.1/; do
    for i in $(seq 50); do
        curl -s $url && break
        sleep 0.1
    done
done
