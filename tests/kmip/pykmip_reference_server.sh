#!/usr/bin/env bash
# PyKMIP's own KMIP server (Debian's python3-pykmip, `kmip.services.server`) as a reference:
# the KMIP test client (tests/kmip/pykmip_test.py, with CUSTOS_KMIP_REFERENCE=1) is checked
# against it, and the KMIP benchmark compares custos with it.
#
#   tests/kmip/pykmip_reference_server.sh DIR PORT   start it in the background; returns once
#                                                    PORT accepts connections
#   tests/kmip/pykmip_reference_server.sh --stop DIR stop it
#
# DIR gets a fresh CA (EC P-256), a server certificate (127.0.0.1, localhost; EKU serverAuth)
# and a client certificate (CN kmip-reference-client; EKU clientAuth, which PyKMIP's server
# requires), server.conf (TLS 1.2 auth suite, client certificates required, the SQLite
# database pykmip.db and the policy directory in DIR), server.log, pid (the server's process
# group leader) and env: the five lines a client needs, printed on stdout too:
#
#   CUSTOS_KMIP_HOST=127.0.0.1
#   CUSTOS_KMIP_PORT=PORT
#   CUSTOS_KMIP_CA=DIR/ca.crt        the CA that issued the server's certificate
#   CUSTOS_KMIP_CERT=DIR/client.crt  the client certificate (and its key below)
#   CUSTOS_KMIP_KEY=DIR/client.key
#
# Only Debian's /usr/bin/python3 is used (another python3 may come first on PATH).
set -euo pipefail
py=/usr/bin/python3

usage() { echo "usage: $0 DIR PORT | $0 --stop DIR" >&2; exit 2; }

if [ "${1:-}" = --stop ]; then
  [ $# -eq 2 ] || usage
  dir="$2"
  [ -f "$dir/pid" ] || { echo "no $dir/pid: not started" >&2; exit 1; }
  pid="$(cat "$dir/pid")"
  # The server runs in its own process group (setsid below), with its multiprocessing
  # manager: TERM the group, then KILL what is left after 10 s.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$dir/pid"
  exit 0
fi

[ $# -eq 2 ] || usage
dir="$1" port="$2"
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || usage
$py -c 'import kmip.services.server' 2>/dev/null ||
  { echo "PyKMIP is not installed for $py (apt-get install python3-pykmip)" >&2; exit 2; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
  echo "a reference server already runs from $dir (pid $(cat "$dir/pid"))" >&2; exit 1
fi
probe() { $py -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; }
# Something else on PORT would answer the readiness probe below.
if probe; then echo "port $port is in use" >&2; exit 1; fi
rm -f "$dir/pykmip.db" "$dir/server.log"*
mkdir -p "$dir/policies"

# A certificate: NAME CN EXT_LINES (signed by the CA in DIR).
issue() {
  local name="$1" cn="$2" ext="$3"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf '%b' "$ext" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -sha256 \
  -subj "/CN=PyKMIP reference CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
issue server 127.0.0.1 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
issue client kmip-reference-client "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
chmod 600 "$dir"/*.key

cat >"$dir/server.conf" <<EOF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$dir/server.crt
key_path=$dir/server.key
ca_path=$dir/ca.crt
auth_suite=TLS1.2
policy_path=$dir/policies
enable_tls_client_auth=True
logging_level=INFO
database_path=$dir/pykmip.db
EOF

# Its own session (process group), so that --stop reaches the multiprocessing manager too.
setsid $py -W ignore -m kmip.services.server.server -f "$dir/server.conf" -l "$dir/server.log" \
  >"$dir/server.out" 2>&1 </dev/null &
echo $! >"$dir/pid"
ready=""
for _ in $(seq 150); do
  if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
  if probe; then
    ready=1; break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "the PyKMIP server did not start on port $port:" >&2
  tail -n 20 "$dir/server.out" "$dir/server.log" >&2 2>/dev/null || true
  "$0" --stop "$dir" 2>/dev/null || true
  exit 1
fi

cat >"$dir/env" <<EOF
CUSTOS_KMIP_HOST=127.0.0.1
CUSTOS_KMIP_PORT=$port
CUSTOS_KMIP_CA=$dir/ca.crt
CUSTOS_KMIP_CERT=$dir/client.crt
CUSTOS_KMIP_KEY=$dir/client.key
EOF
cat "$dir/env"
