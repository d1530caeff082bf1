//! The User-Mode Linux harness (tests/common/uml.rs) gives the tests the
//! kernel features this host lacks. One boot proves each of them inside
//! UML, each as its own check that fails on its own:
//!
//! - `bridge`: two network namespaces joined by veth pairs on a bridge
//!   reach each other (ping);
//! - `gre_link`, `gre_ping`: `ip link add ... type gre` works (the host
//!   says "Unknown device type") and carries traffic between the
//!   namespaces;
//! - `mgre_ping`: a multipoint GRE device (no remote, a key) with a
//!   permanent neighbor entry mapping the tunnel address to the NBMA
//!   address, as nhrpd sets it up, carries traffic;
//! - `tcp_ao`: two sockets with a TCP-AO key (setsockopt TCP_AO_ADD_KEY,
//!   which the host kernel refuses with ENOPROTOOPT) connect and exchange
//!   data, and the kernel counts signed segments (TcpExt TCPAOGood > 0);
//! - `tcp_ao_required`: a client without the key cannot connect to that
//!   listener and the kernel counts the drop (TCPAORequired > 0);
//! - `bird_up`, `bird_bgp`: the host's real BIRD runs in each namespace,
//!   answers birdc, and the two reach BGP Established over the GRE tunnel.
//!
//! Needs the UML kernel (`scripts/uml build`; `.ci/run` builds it) and
//! bird2: under CI=true a missing one fails, elsewhere the test skips.

mod common;

use common::{bird, prereq, uml};

/// TCP-AO from python3: `ao.py` (struct tcp_ao_add as in the 6.12 uapi
/// header, include/uapi/linux/tcp.h: size 288, addr @0, alg_name @128,
/// ifindex @192, flags @196, prefix @202, sndid @203, rcvid @204,
/// maclen @205, keyflags @206, keylen @207, key @208).
const AO_PY: &str = r#"
import socket, struct, sys

TCP_AO_ADD_KEY = 38

def add_key(sock, addr, prefix, secret, keyid=1):
    buf = bytearray(288)
    struct.pack_into("=H", buf, 0, socket.AF_INET)
    buf[4:8] = socket.inet_aton(addr)
    alg = b"hmac(sha1)"
    buf[128:128 + len(alg)] = alg
    buf[202] = prefix
    buf[203] = keyid
    buf[204] = keyid
    buf[205] = 12
    buf[207] = len(secret)
    buf[208:208 + len(secret)] = secret
    sock.setsockopt(socket.IPPROTO_TCP, TCP_AO_ADD_KEY, bytes(buf))

def counters():
    lines = open("/proc/net/netstat").read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))
    return {}

secret = b"uml-smoke-secret"
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
add_key(server, "127.0.0.0", 8, secret)
server.bind(("127.0.0.1", 0))
server.listen(4)
port = server.getsockname()[1]

if sys.argv[1] == "good":
    client = socket.socket()
    add_key(client, "127.0.0.1", 32, secret)
    client.settimeout(10)
    client.connect(("127.0.0.1", port))
    conn, _ = server.accept()
    client.sendall(b"signed hello")
    got = conn.recv(100)
    assert got == b"signed hello", got
    good = counters().get("TCPAOGood", 0)
    assert good > 0, "TCPAOGood is %d" % good
    print("TCPAOGood", good)
else:
    client = socket.socket()
    client.settimeout(3)
    try:
        client.connect(("127.0.0.1", port))
        sys.exit("an unsigned client connected to a TCP-AO listener")
    except (socket.timeout, OSError) as e:
        print("unsigned client refused:", e)
    required = counters().get("TCPAORequired", 0)
    assert required > 0, "TCPAORequired is %d" % required
    print("TCPAORequired", required)
"#;

/// Inside UML: namespaces a and b on bridge br0 (underlay 10.9.0.0/24),
/// GRE tunnel 10.10.0.0/30 and multipoint GRE 10.20.0.0/24 between them,
/// TCP-AO in namespace ao, a BIRD in each of a and b peering over GRE.
const SMOKE: &str = r#"
set -u
ok=0
fail() { ok=1; }
in_a() { ip netns exec a "$@"; }
in_b() { ip netns exec b "$@"; }

ip netns add a && ip netns add b && ip netns add ao
ip link add br0 type bridge && ip link set br0 up
for n in a b; do
  ip link add "v$n" type veth peer name "v$n-br"
  ip link set "v$n-br" master br0 up
  ip link set "v$n" netns "$n"
  ip -n "$n" link set lo up
  ip -n "$n" link set "v$n" name eth0
  ip -n "$n" link set eth0 up
done
ip -n a addr add 10.9.0.1/24 dev eth0
ip -n b addr add 10.9.0.2/24 dev eth0
check bridge in_a ping -c 1 -W 5 10.9.0.2 || fail

check gre_link sh -c '
  ip -n a link add gre1 type gre local 10.9.0.1 remote 10.9.0.2 ttl 64 &&
  ip -n b link add gre1 type gre local 10.9.0.2 remote 10.9.0.1 ttl 64' || fail
ip -n a addr add 10.10.0.1/30 dev gre1 && ip -n a link set gre1 up
ip -n b addr add 10.10.0.2/30 dev gre1 && ip -n b link set gre1 up
check gre_ping in_a ping -c 1 -W 5 10.10.0.2 || fail

# Multipoint GRE as nhrpd uses it: no remote, a key, NBMA next hops as
# neighbor entries.
for n in a b; do
  ip -n "$n" link add gre2 type gre local "10.9.0.$([ $n = a ] && echo 1 || echo 2)" key 42 ttl 64
  ip -n "$n" link set gre2 up
done
ip -n a addr add 10.20.0.1/24 dev gre2
ip -n b addr add 10.20.0.2/24 dev gre2
ip -n a neigh replace 10.20.0.2 lladdr 10.9.0.2 dev gre2 nud permanent
ip -n b neigh replace 10.20.0.1 lladdr 10.9.0.1 dev gre2 nud permanent
check mgre_ping in_a ping -c 1 -W 5 10.20.0.2 || fail

ip -n ao link set lo up
check tcp_ao ip netns exec ao python3 "$UML_RUN/ao.py" good || fail
check tcp_ao_required ip netns exec ao python3 "$UML_RUN/ao.py" unsigned || fail

for n in a b; do
  me=$([ $n = a ] && echo 1 || echo 2)
  peer=$([ $n = a ] && echo 2 || echo 1)
  mkdir -p "/tmp/bird-$n"
  cat > "/tmp/bird-$n/bird.conf" <<EOF
log "/tmp/bird-$n/bird.log" all;
router id 10.10.0.$me;
protocol device { }
protocol bgp peer {
  local 10.10.0.$me as 6500$me;
  neighbor 10.10.0.$peer as 6500$peer;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export none; };
}
EOF
  ip netns exec "$n" /usr/sbin/bird -c "/tmp/bird-$n/bird.conf" -s "/tmp/bird-$n/ctl" -P "/tmp/bird-$n/pid"
done
up() {
  for i in $(seq 60); do
    birdc -s /tmp/bird-a/ctl show status 2>&1 | grep -q 'Daemon is up and running' &&
      birdc -s /tmp/bird-b/ctl show status 2>&1 | grep -q 'Daemon is up and running' && return 0
    sleep 1
  done
  birdc -s /tmp/bird-a/ctl show status; return 1
}
check bird_up up || fail
established() {
  for i in $(seq 120); do
    birdc -s /tmp/bird-a/ctl show protocols peer | grep -q Established &&
      birdc -s /tmp/bird-b/ctl show protocols peer | grep -q Established && return 0
    sleep 1
  done
  birdc -s /tmp/bird-a/ctl show protocols all peer; cat /tmp/bird-a/bird.log; return 1
}
check bird_bgp established || fail
for n in a b; do kill "$(cat /tmp/bird-$n/pid)"; done
exit $ok
"#;

#[test]
fn uml_kernel_has_what_the_tests_need() {
    let Some(uml) = uml::require("UML smoke test") else {
        return;
    };
    let missing = bird::missing_bird().or_else(|| prereq::tools(&["python3", "ping", "birdc"]));
    if !prereq::runnable("UML smoke test", missing) {
        return;
    }
    let run = uml
        .file("ao.py", AO_PY)
        .script(&format!("{}{SMOKE}", uml::CHECK_FN));
    for check in [
        "bridge",
        "gre_link",
        "gre_ping",
        "mgre_ping",
        "tcp_ao",
        "tcp_ao_required",
        "bird_up",
        "bird_bgp",
    ] {
        run.assert_check(check);
    }
    run.assert_ok();
}

/// The harness itself: a payload's exit status and output come back, and
/// a payload that hangs is killed at the timeout with nothing left behind.
#[test]
fn uml_reports_status_and_times_out() {
    let Some(uml) = uml::require("UML harness test") else {
        return;
    };
    let run = uml.script("echo from inside; uname -r; exit 7");
    assert_eq!(run.status, Some(7), "{}", run.report());
    assert!(run.output.contains("from inside"), "{}", run.report());
    assert!(!run.timed_out);

    let run = uml
        .timeout(std::time::Duration::from_secs(20))
        .script("sleep 1000");
    assert!(run.timed_out, "{}", run.report());
    assert_eq!(run.status, None, "{}", run.report());
    assert!(
        run.console.contains("uml-init: payload starts"),
        "the payload never started, so the timeout proves nothing: {}",
        run.report()
    );
    let left = live_group_members(run.pid);
    assert!(left.is_empty(), "UML processes outlived the run: {left:?}");
}

/// Processes of process group `pgid` that are not zombies.
fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            left.push(pid);
        }
    }
    left
}
