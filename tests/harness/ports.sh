# ports.sh -- sourced by the scripts that start servers (tests/harness/start-*, the torture
# harness's servers.sh, bench/start-etcd).
#
# tl_random_port prints a random port on 127.0.0.1 that nothing listens on, below the kernel's
# range of ephemeral ports (net.ipv4.ip_local_port_range, 32768-60999 by default). Ports in that
# range are the local ports of outgoing connections, which the tests open by the thousand: a
# server port picked there can be taken by a client socket between the check and the bind, or
# while a server that is restarted on its old port is down. The port after the one printed is
# below the range too (etcd needs two).
tl_port_in_use() { # PORT: something listens on it
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

tl_random_port() {
  local low=32768 high=60999 lo=20000 hi p
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low high </proc/sys/net/ipv4/ip_local_port_range
  fi
  hi=$((low - 2))
  if [ "$hi" -lt $((lo + 1000)) ]; then # the ephemeral range starts low: go above it
    lo=$((high + 1))
    hi=65533
    if [ "$hi" -lt $((lo + 1000)) ]; then # it covers nearly everything: take our chances
      lo=20000
      hi=60000
    fi
  fi
  for _ in $(seq 1 200); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    if ! tl_port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
