# A DMVPN hub end to end, run inside User-Mode Linux by tests/uml_dmvpn.rs
# (the host kernel has no GRE). The caller sets AUTOPEER (the binary) and
# EX (bird/nhrp-hub, whose files are used as shipped, paths and the test's
# short timers substituted) and defines check() (tests/common/uml.rs).
#
# Underlay: a bridge with the hub (203.0.113.1) and three spokes; each
# node is a network namespace with eth0 on the bridge and a multipoint GRE
# device gre1 (key 42) with an address in 10.200.0.0/16. Every node runs
# zebra + nhrpd (FRR) and BIRD; the hub runs autopeer too. s1 (.11) and
# s2 (.12) register from inside nbma_prefixes (203.0.113.0/25), s3 (.13)
# from 203.0.113.200, outside.
#
# Prints `CHECK name ok|fail detail` lines and `FIGURE name value` lines.
set -u
W=/tmp/dmvpn
mkdir -p "$W" /run/bird /run/autopeer
HOLD=30      # the spokes' NHRP holding time (registration every 10 s)
DEPART=10s   # the hub's [[group]] depart

say() { echo "--- $*"; }
# wait_for SECONDS CMD...: polls CMD every second; on timeout runs it once
# more with its output shown (a failed check's detail) and returns false.
wait_for() {
  local limit=$1; shift
  local t=0
  until "$@" >/dev/null 2>&1; do
    sleep 1; t=$((t + 1))
    if [ "$t" -ge "$limit" ]; then "$@"; return 1; fi
  done
  return 0
}
# shows PATTERN CMD...: CMD's output, and whether it matches PATTERN.
shows() { local pat=$1; shift; local out; out="$("$@" 2>&1)"; echo "$out"; grep -qE -- "$pat" <<<"$out"; }
vty() { local n=$1; shift; local a=(); for c in "$@"; do a+=(-c "$c"); done
  vtysh --vty_socket "/tmp/frr-$n" -d nhrpd "${a[@]}"; }
birdc_n() { local n=$1; shift; birdc -s "$W/$n/bird.ctl" "$@"; }
audit() { cat "$W/hub/audit.log" 2>/dev/null; }

node() { # NAME NBMA GRE [LAN]
  local n=$1 nbma=$2 gre=$3 lan=${4:-}
  ip netns add "$n"
  ip link add "$n-u" type veth peer name eth0 netns "$n"
  ip link set "$n-u" master br0 up
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$n" link set lo up
  ip -n "$n" addr add "$nbma/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" tunnel add gre1 mode gre key 42 ttl 64 dev eth0
  ip -n "$n" addr add "$gre/32" dev gre1
  ip -n "$n" link set gre1 up
  if [ -n "$lan" ]; then
    ip -n "$n" link add lan0 type dummy
    ip -n "$n" addr add "$lan" dev lan0
    ip -n "$n" link set lan0 up
  fi
  mkdir -p "$W/$n"
}

frr() { # NAME CONF: zebra + nhrpd in NAME, sockets and logs in /tmp/frr-NAME (user frr's)
  local n=$1 conf=$2 d=/tmp/frr-$1
  mkdir -p "$d"; chown frr:frr "$d"
  ip netns exec "$n" /usr/lib/frr/zebra -z "$d/zserv.api" -i "$d/zebra.pid" \
    --vty_socket "$d" -f /dev/null --log "file:$d/zebra.log" &
  wait_for 20 test -S "$d/zserv.api" || echo "zebra in $n did not start"
  nhrpd "$n" "$conf"
}
nhrpd() { # NAME CONF
  local n=$1 conf=$2 d=/tmp/frr-$1
  rm -f "$d/nhrpd.vty"
  ip netns exec "$n" /usr/lib/frr/nhrpd -z "$d/zserv.api" -i "$d/nhrpd.pid" \
    --vty_socket "$d" -f "$conf" --log "file:$d/nhrpd.log" ${DMVPN_STOP:+--log-level debugging} &
  wait_for 20 test -S "$d/nhrpd.vty" || echo "nhrpd in $n did not start"
}

bird_in() { # NAME CONF
  local n=$1
  ip netns exec "$n" bird -c "$2" -s "$W/$n/bird.ctl" -P "$W/$n/bird.pid"
}

say "underlay"
ip link add br0 type bridge
ip link set br0 up
node hub 203.0.113.1 10.200.0.1
node s1 203.0.113.11 10.200.0.11 10.201.1.1/24
node s2 203.0.113.12 10.200.0.12 10.201.2.1/24
node s3 203.0.113.200 10.200.0.13 10.201.3.1/24
ip netns exec hub sysctl -qw net.ipv4.ip_forward=1

say "hub: BIRD, autopeer, nhrpd (bird/nhrp-hub as shipped)"
H=$W/hub
sed -e "s|^log syslog all;|log \"$H/bird.log\" all;|" "$EX/bird.conf" > "$H/bird.conf"
: > "$H/autopeer.conf"
bird_in hub "$H/bird.conf"
sed -e "s|^socket  = \"/run/bird/bird.ctl\"|socket  = \"$H/bird.ctl\"|" \
    -e "s|^config  = .*|config  = \"$H/bird.conf\"|" \
    -e "s|^include = .*|include = \"$H/autopeer.conf\"|" \
    -e "s|^audit_log = .*|audit_log = \"$H/audit.log\"\nstate = \"$H/state.toml\"\nsocket = \"$H/autopeer.ctl\"|" \
    -e "s|^logs = .*|logs = [\"$H/bird.log\"]|" \
    -e "s|^nhrp_vty    = .*|nhrp_vty    = \"/tmp/frr-hub/nhrpd.vty\"|" \
    -e "s|^depart    = .*|depart    = \"$DEPART\"|" \
    -e "s|^nbma_prefixes = .*|nbma_prefixes = [\"203.0.113.0/25\"]|" \
    "$EX/autopeer.toml" > "$H/autopeer.toml"
check autopeer_check ip netns exec hub "$AUTOPEER" -c "$H/autopeer.toml" check
ip netns exec hub "$AUTOPEER" -c "$H/autopeer.toml" -v run > "$H/autopeer.log" 2>&1 &
wait_for 20 test -S /run/autopeer/nhrp.sock || echo "autopeer did not listen"
ip netns exec hub iptables -A FORWARD -i gre1 -o gre1 -m hashlimit --hashlimit-upto 4/minute \
  --hashlimit-burst 1 --hashlimit-mode srcip,dstip --hashlimit-srcmask 24 \
  --hashlimit-dstmask 24 --hashlimit-name loglimit-0 \
  -j NFLOG --nflog-group 1 --nflog-range 128
# The test's own counter of s1 -> s2 packets the hub relays.
ip netns exec hub iptables -I FORWARD 1 -i gre1 -o gre1 -s 10.201.1.0/24 -d 10.201.2.0/24
relayed() { ip netns exec hub iptables -L FORWARD 1 -v -x -n | awk '{print $1}'; }
{ [ -n "${DMVPN_STOP:-}" ] && echo "debug nhrp all"; grep -v '^!' "$EX/frr.conf"; } > "$H/frr.conf"
frr hub "$H/frr.conf"
check nhrpd_connected wait_for 30 grep -q "nhrp: nhrpd connected" "$H/autopeer.log"

say "spokes (bird/nhrp-hub/spoke-*.conf)"
spoke() { # NAME GRE
  local n=$1 gre=$2
  { [ -n "${DMVPN_STOP:-}" ] && echo "debug nhrp all"
    sed -e "s/holdtime 60/holdtime $HOLD/" "$EX/spoke-frr.conf" | grep -v '^!'; } > "$W/$n/frr.conf"
  sed -e "s/10\.200\.0\.11/$gre/g" "$EX/spoke-bird.conf" > "$W/$n/bird.conf"
  echo "log \"$W/$n/bird.log\" all;" >> "$W/$n/bird.conf"
  frr "$n" "$W/$n/frr.conf"
  bird_in "$n" "$W/$n/bird.conf"
}
spoke s1 10.200.0.11
spoke s2 10.200.0.12
spoke s3 10.200.0.13

diag() {
  for n in hub s1; do
    echo "=== $n"; ip -n $n -d link show gre1; ip -n $n addr; ip -n $n route; ip -n $n neigh
    vty $n "show ip nhrp cache" "show ip nhrp nhs" "show ip nhrp shortcut" "show interface gre1" 2>&1
    echo "--- nhrpd log of $n"; grep -v "Netlink: \(new\|del\)-neigh" "/tmp/frr-$n/nhrpd.log" | tail -60
  done
  echo "=== autopeer"; tail -20 "$H/autopeer.log"; cat "$H/audit.log"
}
if [ -n "${DMVPN_STOP:-}" ]; then
  sleep "$DMVPN_STOP"
  ip netns exec s1 ping -c 5 -i 0.5 -I 10.201.1.1 10.201.2.1
  sleep 5
  ip netns exec hub iptables -L FORWARD -v -n
  diag
  exit 0
fi
say "registration -> authorize-binding -> accept -> BGP"
bound() { vty hub "show ip nhrp cache" | grep -E "^gre1 +dynamic +$1 "; }
check registered_s1 wait_for 90 bound 10.200.0.11
check registered_s2 wait_for 90 bound 10.200.0.12
check authorized_s1 grep -q "nhrp: accepted registration of 10.200.0.11 (nbma 203.0.113.11) on gre1: admitted to group spokes as spokes_10_200_0_11" "$H/audit.log"
check authorized_s2 grep -q "nhrp: accepted registration of 10.200.0.12 (nbma 203.0.113.12) on gre1: admitted" "$H/audit.log"
established() { birdc_n hub show protocols "$1" | grep -q Established; }
check established_s1 wait_for 90 established spokes_10_200_0_11
check established_s2 wait_for 90 established spokes_10_200_0_12
check spoke_side_established wait_for 30 eval 'birdc_n s1 show protocols hub | grep -q Established'

say "a spoke outside nbma_prefixes"
check rejected_s3 wait_for 60 grep -q "nhrp: rejected registration of 10.200.0.13 (nbma 203.0.113.200) on gre1" "$H/audit.log"
check nhrpd_refused_s3 eval '! bound 10.200.0.13'
check no_bgp_for_s3 eval '! birdc_n hub show protocols | grep -q spokes_10_200_0_13'
check no_include_for_s3 eval '! grep -q 10.200.0.13 "$H/autopeer.conf"'

say "spoke to spoke"
check routes_via_hub wait_for 60 eval 'ip -n s1 route show 10.201.2.0/24 | grep -q "via 10.200.0.1"'
ip netns exec s1 ping -c 5 -i 0.5 -I 10.201.1.1 10.201.2.1 > "$W/ping1.out" 2>&1
check spoke_ping grep -q " 0% packet loss\| [1-4] received" "$W/ping1.out"
check shortcut_installed wait_for 30 shows "10\.201\.2\.0/24" vty s1 "show ip nhrp shortcut"
check shortcut_cache wait_for 10 shows "^gre1 +[a-z]+ +10\.200\.0\.12 +203\.0\.113\.12 " vty s1 "show ip nhrp cache"
check relayed_first eval '[ "$(relayed)" -gt 0 ]'
before=$(relayed)
ip netns exec s1 ping -c 3 -i 0.5 -I 10.201.1.1 10.201.2.1 > "$W/ping2.out" 2>&1
check shortcut_ping grep -q " 0% packet loss" "$W/ping2.out"
check shortcut_bypasses_hub eval '[ "$(relayed)" = "$before" ] || { echo "hub relayed $before then $(relayed)"; false; }'
check shortcut_path wait_for 10 shows "10\.201\.2\.0/24 .*via 10\.200\.0\.12 dev gre1 proto nhrp" ip -n s1 route show 10.201.2.0/24

say "departure: s2's nhrpd stops and its public address goes away"
kill "$(cat /tmp/frr-s2/nhrpd.pid)"
ip -n s2 link set eth0 down
left=$(date +%s)
gone="removing neighbor 10.200.0.12 from group spokes: departed: no NHRP binding in nhrpd's cache for $DEPART"
if wait_for 180 grep -qF "$gone" "$H/audit.log"; then
  echo "FIGURE departure_seconds $(( $(date +%s) - left )) (holding time ${HOLD}s, depart $DEPART)"
  echo "CHECK departed ok"
else
  echo "CHECK departed fail $(tail -5 "$H/audit.log" | tr '\n' ' ')"
fi
check departed_from_bird wait_for 30 eval '! birdc_n hub show protocols | grep -q spokes_10_200_0_12'
check s1_stays eval 'birdc_n hub show protocols spokes_10_200_0_11 | grep -q Established && ! grep -q "removing neighbor 10.200.0.11" "$H/audit.log"'

say "s2 comes back"
ip -n s2 link set eth0 up
nhrpd s2 "$W/s2/frr.conf"
readmitted() { [ "$(grep -c "adding neighbor 10.200.0.12 to group spokes (via nhrp)" "$H/audit.log")" = 2 ]; }
check readmitted wait_for 90 readmitted
check reestablished wait_for 90 established spokes_10_200_0_12

say "state at the end"
vty hub "show ip nhrp cache"
vty s1 "show ip nhrp cache" "show ip nhrp shortcut"
birdc_n hub show protocols
cat "$H/audit.log"
echo "--- autopeer log (last 30 lines)"; tail -30 "$H/autopeer.log"
for n in hub s1; do echo "--- nhrpd log of $n (last 20 lines)"; tail -20 "/tmp/frr-$n/nhrpd.log"; done
exit 0
