#!/usr/bin/env bash
# A local cluster of custos nodes in one command (issue 15; docs/operations.md "A cluster of
# nodes"). Development only: one host, one user, the sim TEE, passphrases in files.
#
#   scripts/dev-cluster.sh CUSTOS_BIN DIR [NODES]    start; returns once everything serves
#   scripts/dev-cluster.sh --stop DIR                 stop it all (again: a no-op)
#
# Everything listens on 127.0.0.1 on free ports; all state is under DIR, which must be new or
# empty (this script does not restart an old cluster: --stop it, remove DIR, start again):
#
#   DIR/pg-primary, DIR/pg-standby  PostgreSQL (the newest /usr/lib/postgresql/*/bin): a primary
#                        and a hot standby made with `pg_basebackup -R` that streams from it
#                        (slot custos_standby), synchronously: a commit returns once the standby
#                        has it, so a promotion loses nothing acknowledged (and while the
#                        standby is down, writes wait). Run by user nobody when this script runs as root
#                        (setpriv; the PostgreSQL directories are chowned to nobody), else by the
#                        invoking user. The superuser `postgres` connects only through the socket
#                        directory DIR/pg-run (0700, also the PostgreSQL logs); over TCP only the
#                        role `custos` (owner of database custos) and `replicator` (replication),
#                        both with scram-sha-256 passwords. The nodes read theirs from DIR/pgpass.
#   DIR/keepers/         P1 (provider, 1-of-1) and C1..C3 (customer, 2-of-3): keeper init with a
#                        light Argon2id (4 MiB, t=1: start-up speed, the passphrase is a file
#                        beside them anyway), their operators' admin keys, an application key
#                        (app.key, role decrypt) and `custos ceremony dkg` -> DIR/custody.json.
#                        P1, C1 and C2 then serve with --auto-release to node 1 under
#                        DIR/release-policy.json: the SHA-256 of the custos-enclave next to
#                        CUSTOS_BIN and the signer of node 1's evidence (`custos attest verify`).
#   DIR/node-N/          server.toml, data/ (its own data_dir, with the shared admin token),
#                        server.log. Every node: the same custody.json, the same sim platform key
#                        (DIR/sim: attested join needs one signer), and [store] url naming both
#                        PostgreSQL servers with target_session_attrs=read-write, so a node
#                        follows the primary after `pg_ctl promote -D DIR/pg-standby`.
#                        Node 1 is initialised (`custos operator init`); nodes 2..NODES join.
#   DIR/haproxy.cfg      HAProxy (mode http, round robin, foreground, the invoking user) in
#                        front of the nodes; a node is in rotation only while
#                        GET /v1/sys/health?strict answers 200: initialised, unsealed and its key
#                        cache confirmed against the database (503 otherwise).
#
# Choices:
#   - Plain HTTP everywhere (insecure_http, keeper --insecure-http), as dev mode does: one
#     loopback host, and no CA to hand to every client. Production uses TLS.
#   - Nodes 2..NODES join through the HAProxy frontend, not through node 1: a restarted node
#     then joins through whichever node is unsealed. A join (like a keeper's release) is a
#     SIGMA handshake of three requests that must reach the same node, so HAProxy sends
#     /v1/sys/sigma/* to a backend with `balance first`: the first node in rotation.
#     Node 1 has no join: the keepers unseal it (auto-release), so the cluster comes back even
#     when every node restarted.
#   - Every node gets the same admin token (DIR/node-N/data/admin.token, written before its
#     first start), so admin calls work through HAProxy.
#   - One access key (user "dev"), created through node 1; clients get it from dev.env.
#   - --stop reads DIR/pids, and also ends custos and haproxy processes started with a path
#     under DIR that it does not list (a node restarted by hand), then stops PostgreSQL with
#     pg_ctl by data directory.
#
# On success it writes DIR/dev.env (the lines of dev mode's dev.env without CUSTOS_DEV_PID;
# CUSTOS_ENDPOINT is the HAProxy frontend), DIR/node-N.env (the same lines, CUSTOS_ENDPOINT
# that node's own address), both 0600, and DIR/pids: "name pid" per line for node-1..node-N,
# postgres-primary, postgres-standby, haproxy, keeper-P1, keeper-C1, ... Use them with
# `set -a; . DIR/dev.env; set +a`. On a failure it names the step, shows the end of that
# component's log, stops what it started and exits 1.
#
# Environment: DEV_CLUSTER_WAIT (seconds, default 60): how long one step may wait.
# Needs curl, jq, haproxy, PostgreSQL's server binaries and setpriv (scripts/install-deps.sh).
set -uo pipefail

usage() {
  echo "usage: $0 CUSTOS_BIN DIR [NODES]" >&2
  echo "       $0 --stop DIR" >&2
  exit 2
}

wait_s="${DEV_CLUSTER_WAIT:-60}"
pg_user=nobody pg_group=nogroup

# The PostgreSQL server binaries: the newest installed major version.
pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/initdb" ] || return 1
  echo "$d"
}

# as_pg CMD...: run a PostgreSQL program as the unprivileged user that owns the databases
# (nobody when we are root), from a directory that user may enter.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$dir/pg-run" && setpriv --reuid="$pg_user" --regid="$pg_group" --clear-groups -- "$@")
  else
    (cd "$dir/pg-run" && "$@")
  fi
}
# pg_own PATH...: hand files and directories to the PostgreSQL user (a no-op unless root).
pg_own() {
  if [ "$(id -u)" -eq 0 ]; then chown "$pg_user:$pg_group" "$@"; fi
}

# alive PID: the process exists and is not a zombie (a child of this script that exited stays
# a zombie until waited for, and kill -0 succeeds on it).
alive() {
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ]
}
# ours PID: alive and started for this DIR (its command line names DIR), so a pid reused by
# an unrelated process since is never signalled.
ours() {
  alive "$1" && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$dir/"
}

# stop_pids PID...: SIGTERM, up to 15 s for them to exit, then SIGKILL.
stop_pids() {
  local p left
  [ $# -gt 0 ] || return 0
  for p; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 150); do
    left=""
    for p; do alive "$p" && left="$left $p"; done
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  echo "dev-cluster: still running after 15 s, killing:$left" >&2
  for p in $left; do kill -KILL "$p" 2>/dev/null; done
  sleep 0.2
}

# pids_named PREFIX: the pids DIR/pids lists under names starting with PREFIX that are still ours.
pids_named() {
  local name pid
  [ -f "$dir/pids" ] || return 0
  while read -r name pid; do
    case "$name" in "$1"*) ours "$pid" && echo "$pid" ;; esac
  done <"$dir/pids"
}

# stop_postgres NAME DATA_DIR: a fast shutdown by pg_ctl; signals if that fails.
stop_postgres() {
  local pid bin
  pid="$(pids_named "$1")"
  bin="$(pg_bin)"
  if [ -n "$bin" ] && [ -f "$2/postmaster.pid" ] && [ -d "$dir/pg-run" ]; then
    as_pg "$bin/pg_ctl" -D "$2" -m fast -w -t 30 stop >/dev/null 2>&1
  fi
  [ -n "$pid" ] && alive "$pid" && stop_pids "$pid"
  return 0
}

# strays: custos and haproxy processes started with an argument under DIR that DIR/pids does
# not name (a node restarted by hand after a kill, say), so --stop ends those too.
strays() {
  local f pid exe
  for f in /proc/[0-9]*/cmdline; do
    { IFS= read -r -d '' exe; } 2>/dev/null <"$f" || continue
    case "${exe##*/}" in custos | haproxy) ;; *) continue ;; esac
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    tr '\0' '\n' 2>/dev/null <"$f" | awk -v p="$dir/" 'index($0, p) == 1 { f = 1 } END { exit !f }' &&
      alive "$pid" && echo "$pid"
  done
}
# kind PID: haproxy, node (custos server) or keeper (custos keeper serve).
kind() {
  local -a a
  mapfile -d '' -t a 2>/dev/null <"/proc/$1/cmdline" || return 0
  case "${a[0]:-}" in
    haproxy | */haproxy) echo haproxy ;;
    custos | */custos)
      case "${a[1]:-} ${a[2]:-}" in
        "server "*) echo node ;;
        "keeper serve") echo keeper ;;
      esac ;;
  esac
}

# stop_all: every process of the cluster, front to back: HAProxy, the nodes (with their trusted
# cores), the keepers, then the databases the nodes wrote to (pg_ctl finds them by their data
# directories). Safe to run again; returns 1 if something would not stop.
stop_all() {
  rm -f "$dir/dev.env" "$dir"/node-*.env
  local p haproxy="" nodes="" keepers="" cores="" left=""
  for p in $({ pids_named haproxy; pids_named node-; pids_named keeper-; strays; } | sort -u); do
    case "$(kind "$p")" in
      haproxy) haproxy="$haproxy $p" ;;
      node) nodes="$nodes $p" ;;
      keeper) keepers="$keepers $p" ;;
    esac
  done
  stop_pids $haproxy
  for p in $nodes; do cores="$cores $(pgrep -P "$p" 2>/dev/null)"; done
  stop_pids $nodes
  # A core exits when its host does; one left behind (its host was killed) is stopped here.
  for p in $cores; do alive "$p" && left="$left $p"; done
  stop_pids $left
  stop_pids $keepers
  stop_postgres postgres-standby "$dir/pg-standby"
  stop_postgres postgres-primary "$dir/pg-primary"
  local name pid survivors=""
  if [ -f "$dir/pids" ]; then
    while read -r name pid; do ours "$pid" && survivors="$survivors $name=$pid"; done <"$dir/pids"
  fi
  for p in $(strays); do survivors="$survivors $p"; done
  if [ -n "$survivors" ]; then
    echo "dev-cluster: could not stop:$survivors" >&2
    return 1
  fi
  rm -f "$dir/pids"
}

if [ "${1:-}" = --stop ]; then
  [ $# -eq 2 ] || usage
  [ -d "$2" ] || { echo "dev-cluster: no directory $2: nothing to stop"; exit 0; }
  dir="$(cd "$2" && pwd)"
  if [ ! -f "$dir/pids" ] && [ -z "$(strays)" ] && [ ! -f "$dir/pg-primary/postmaster.pid" ] &&
     [ ! -f "$dir/pg-standby/postmaster.pid" ]; then
    echo "dev-cluster: nothing running in $dir"
    exit 0
  fi
  stop_all || exit 1
  echo "dev-cluster: stopped everything in $dir"
  exit 0
fi

# ---- start ---------------------------------------------------------------------------------
[ $# -ge 2 ] && [ $# -le 3 ] || usage
custos="$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")"
nodes="${3:-3}"
[ -x "$custos" ] || { echo "dev-cluster: not an executable: $1" >&2; exit 2; }
[ -x "$(dirname "$custos")/custos-enclave" ] || { echo "dev-cluster: no custos-enclave next to $custos" >&2; exit 2; }
[[ "$nodes" =~ ^[1-9][0-9]?$ ]] || { echo "dev-cluster: NODES must be 1 to 99" >&2; exit 2; }
for tool in curl jq haproxy setpriv; do
  command -v "$tool" >/dev/null 2>&1 || { echo "dev-cluster: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
pgbin="$(pg_bin)" || { echo "dev-cluster: no PostgreSQL server in /usr/lib/postgresql/*/bin (scripts/install-deps.sh)" >&2; exit 2; }
mkdir -p "$2" || exit 2
dir="$(cd "$2" && pwd)"
if [ -n "$(ls -A "$dir")" ]; then
  echo "dev-cluster: $dir is not empty (a cluster from an earlier run?): $0 --stop $dir, remove it, then start again" >&2
  exit 2
fi
# The server's socket path (DIR/pg-run/.s.PGSQL.PORT) must fit in sockaddr_un (107 bytes).
[ $(( ${#dir} + 22 )) -le 107 ] || { echo "dev-cluster: $dir is too long a path for PostgreSQL's socket" >&2; exit 2; }
chmod 0700 "$dir"
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL runs as nobody: it must be able to pass through DIR (not list it).
  chmod 0711 "$dir"
  setpriv --reuid="$pg_user" --regid="$pg_group" --clear-groups -- test -x "$dir" ||
    { echo "dev-cluster: user $pg_user cannot reach $dir (a parent directory is closed to it): choose another DIR" >&2; exit 2; }
fi

ready=0
step="preparing"
setup_log="$dir/setup.log"
: >"$setup_log"

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$ready" != 1 ]; then
    echo "dev-cluster: stopping what was started" >&2
    stop_all
    [ "$rc" -eq 0 ] && rc=1
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "dev-cluster: $*" >&2; }
# fail MESSAGE [LOG]: the step that failed, why, and the end of the component's log.
fail() {
  echo "dev-cluster: FAILED at step \"$step\": $1" >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    echo "---- last lines of $2 ----" >&2
    tail -n 25 "$2" >&2
  fi
  exit 1
}
t_start="$EPOCHREALTIME"
since_start() { awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
begin() { step="$1"; say "$(since_start) s: $1"; }
# run LOG CMD...: a setup command, its output appended to LOG; fails the step if it fails.
run() {
  local log="$1" rc; shift
  echo "\$ $*" >>"$log"
  "$@" >>"$log" 2>&1 </dev/null
  rc=$?
  [ "$rc" -eq 0 ] || fail "$(basename "$1") $2 $3 exited $rc" "$log"
}

# record NAME PID: DIR/pids, rewritten whole each time (name pid per line).
record() {
  { [ -f "$dir/pids" ] && grep -v "^$1 " "$dir/pids"; echo "$1 $2"; } >"$dir/pids.new"
  mv "$dir/pids.new" "$dir/pids"
}

# Free loopback ports, below Linux's ephemeral range (32768-60999: a port an outgoing
# connection holds cannot be listened on), none handed out twice.
taken=" "
pick_port() {  # VAR
  local p
  for _ in $(seq 500); do
    p=$(( 10000 + RANDOM % 20000 ))  # 10000-29999; the e2e tests use 30000-32699
    case "$taken" in *" $p "*) continue ;; esac
    if ! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      taken="$taken$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  fail "no free port"
}

# wait_http URL PID LOG WHAT: until URL answers (any HTTP status), or PID exits, or time runs out.
wait_http() {
  local deadline=$((SECONDS + wait_s)) code
  while :; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)"
    [ -n "$code" ] && [ "$code" != 000 ] && return 0
    alive "$2" || fail "$4 exited before answering $1" "$3"
    [ "$SECONDS" -lt "$deadline" ] || fail "$4 did not answer $1 within $wait_s s" "$3"
    sleep 0.1
  done
}

pick_port pg_primary_port
pick_port pg_standby_port
pick_port haproxy_port
declare -A keeper_port
for k in P1 C1 C2 C3; do pick_port "keeper_port[$k]"; done
declare -a node_port
for n in $(seq "$nodes"); do pick_port "node_port[$n]"; done
endpoint="http://127.0.0.1:$haproxy_port"
node_url() { echo "http://127.0.0.1:${node_port[$1]}"; }

# ---- 1. PostgreSQL: a primary and a streaming hot standby ------------------------------------
begin "PostgreSQL primary (port $pg_primary_port)"
mkdir -m 0700 "$dir/pg-run" "$dir/pg-primary" "$dir/pg-standby"
pg_own "$dir/pg-run" "$dir/pg-primary" "$dir/pg-standby"
pg_log="$dir/pg-run/initdb.log"
as_pg "$pgbin/initdb" -D "$dir/pg-primary" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C --no-sync >"$pg_log" 2>&1 || fail "initdb failed" "$pg_log"
cat >>"$dir/pg-primary/postgresql.conf" <<EOF

# dev-cluster.sh: loopback only, the socket in a directory only the server's user may enter.
listen_addresses = '127.0.0.1'
port = $pg_primary_port
unix_socket_directories = '$dir/pg-run'
password_encryption = 'scram-sha-256'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
shared_buffers = 32MB
EOF
cat >"$dir/pg-primary/pg_hba.conf" <<EOF
# dev-cluster.sh. The superuser only through the socket directory (0700); over TCP the custos
# role to its database and the replicator to replication, each with a scram-sha-256 password.
local  all          postgres                  trust
host   custos       custos      127.0.0.1/32  scram-sha-256
host   replication  replicator  127.0.0.1/32  scram-sha-256
EOF
pg_own "$dir/pg-primary/pg_hba.conf"
as_pg "$pgbin/pg_ctl" -D "$dir/pg-primary" -l "$dir/pg-run/primary.log" -w -t "$wait_s" start >>"$pg_log" 2>&1 ||
  fail "the primary did not start" "$dir/pg-run/primary.log"
record postgres-primary "$(head -n 1 "$dir/pg-primary/postmaster.pid")"

psql_admin() {  # PORT: psql as the superuser, through the socket; SQL on stdin
  as_pg "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir/pg-run" -p "$1" -U postgres -d postgres
}
# libpq password files (0600): the standby's (the server user's) and the nodes' (this user's).
password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(umask 077; echo "127.0.0.1:*:replication:replicator:$password" >"$dir/pg-run/replpass")
pg_own "$dir/pg-run/replpass"
echo "CREATE ROLE replicator LOGIN REPLICATION PASSWORD '$password';" |
  psql_admin "$pg_primary_port" >>"$pg_log" 2>&1 || fail "creating the replicator role failed" "$pg_log"

begin "PostgreSQL standby (port $pg_standby_port, streaming from the primary)"
# The base backup's checkpoint syncs what the primary wrote so far: taken before the database
# exists it is short, and the database reaches the standby by streaming.
as_pg "$pgbin/pg_basebackup" -D "$dir/pg-standby" -R -X stream -c fast -C -S custos_standby \
  -d "host=127.0.0.1 port=$pg_primary_port user=replicator passfile=$dir/pg-run/replpass" \
  >>"$pg_log" 2>&1 || fail "pg_basebackup failed" "$pg_log"
printf '\n# dev-cluster.sh: the standby listens on its own port.\nport = %s\n' "$pg_standby_port" \
  >>"$dir/pg-standby/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$dir/pg-standby" -l "$dir/pg-run/standby.log" -w -t "$wait_s" start >>"$pg_log" 2>&1 ||
  fail "the standby did not start" "$dir/pg-run/standby.log"
record postgres-standby "$(head -n 1 "$dir/pg-standby/postmaster.pid")"

deadline=$((SECONDS + wait_s))
until [ "$(echo "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming';" |
           psql_admin "$pg_primary_port" 2>>"$pg_log")" = 1 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the standby is not streaming from the primary" "$dir/pg-run/standby.log"
  sleep 0.2
done
[ "$(echo 'SELECT pg_is_in_recovery();' | psql_admin "$pg_standby_port" 2>>"$pg_log")" = t ] ||
  fail "the standby is not in recovery" "$dir/pg-run/standby.log"
# Synchronous replication from here on: a commit is acknowledged once the standby has it on
# disk, so promoting the standby loses nothing acknowledged. (In the primary's own
# postgresql.auto.conf only: the standby, once promoted, has no standby to wait for.)
printf '%s\n' "ALTER SYSTEM SET synchronous_standby_names = '*';" "SELECT pg_reload_conf();" |
  psql_admin "$pg_primary_port" >>"$pg_log" 2>&1 || fail "turning on synchronous replication failed" "$pg_log"
until [ "$(echo "SELECT sync_state FROM pg_stat_replication;" | psql_admin "$pg_primary_port" 2>>"$pg_log")" = sync ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the standby did not become synchronous" "$dir/pg-run/primary.log"
  sleep 0.1
done

password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(umask 077; echo "127.0.0.1:*:custos:custos:$password" >"$dir/pgpass")
printf '%s\n' "CREATE ROLE custos LOGIN PASSWORD '$password';" "CREATE DATABASE custos OWNER custos;" |
  psql_admin "$pg_primary_port" >>"$pg_log" 2>&1 || fail "creating the custos role and database failed" "$pg_log"
unset password

# ---- 2. Keepers and the DKG ----------------------------------------------------------------
begin "keepers P1 (provider 1-of-1), C1..C3 (customer 2-of-3) and their DKG"
kdir="$dir/keepers"
mkdir -m 0700 "$kdir"
(umask 077; head -c 32 /dev/urandom | base64 >"$kdir/passphrase")
pass=(--passphrase-file "$kdir/passphrase")
run "$setup_log" "$custos" client init --out "$kdir/app.key"
for k in P1 C1 C2 C3; do
  domain=customer; [ "$k" = P1 ] && domain=provider
  run "$setup_log" "$custos" keeper init --dir "$kdir/$k" --domain "$domain" --id "$k" "${pass[@]}" \
    --kdf-memory-kib 4096 --kdf-iterations 1
  run "$setup_log" "$custos" client init --out "$kdir/$k-admin.key"
  run "$setup_log" "$custos" keeper allow --dir "$kdir/$k" --client "$kdir/app.key.pub" "${pass[@]}"
  run "$setup_log" "$custos" keeper allow --dir "$kdir/$k" --client "$kdir/$k-admin.key.pub" --role admin "${pass[@]}"
done
keeper_url() { echo "http://127.0.0.1:${keeper_port[$1]}"; }
serve_keeper() {  # ID [keeper serve flags...]
  local k="$1"; shift
  "$custos" keeper serve --dir "$kdir/$k" --listen "127.0.0.1:${keeper_port[$k]}" "${pass[@]}" \
    --insecure-http "$@" </dev/null >>"$kdir/$k.log" 2>&1 &
  record "keeper-$k" $!
  wait_http "$(keeper_url "$k")/v1/keeper" $! "$kdir/$k.log" "keeper $k"
}
for k in P1 C1 C2 C3; do serve_keeper "$k"; done
run "$setup_log" "$custos" ceremony dkg --provider "$(keeper_url P1)" --provider-threshold 1 \
  --customer "$(keeper_url C1),$(keeper_url C2),$(keeper_url C3)" --customer-threshold 2 \
  --out "$dir/custody.json" \
  --client-key "$kdir/P1-admin.key,$kdir/C1-admin.key,$kdir/C2-admin.key,$kdir/C3-admin.key"

# ---- 3. HAProxy ----------------------------------------------------------------------------
begin "HAProxy on $endpoint"
{
  cat <<EOF
# dev-cluster.sh: HAProxy in front of the custos nodes (docs/operations.md "A cluster of nodes").
global
    # Health changes and failed requests: stdout, DIR/haproxy.log. (Startup errors, and the
    # warnings again, go to stderr: DIR/haproxy.err.)
    log stdout format raw local0 info
    maxconn 2048

defaults
    mode http
    log global
    option httplog
    # Log errors and health changes only, not a line per request.
    option dontlog-normal
    # A request that cannot connect is retried, on another node (retries apply to connection
    # failures only: a request a node has received is never sent twice).
    retries 2
    option redispatch 1
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    timeout check 1s
    # Fast checks: a dead or sealed node leaves within about 1 s, an unsealed one returns
    # after one good check.
    default-server inter 500ms fastinter 500ms downinter 500ms fall 2 rise 1

frontend custos
    bind 127.0.0.1:$haproxy_port
    # Every request reaches a node from HAProxy's address, and a node refuses /v1/sys requests
    # (health excepted) from an address that made 100 failed ones within 10 s: one client's
    # refused admin calls would lock every other client out. So a client's refused /v1/sys
    # requests stop here first (429) after 30 within 10 s (health and seal-status still pass).
    acl sys path_beg /v1/sys/
    acl sys_public path /v1/sys/health /v1/sys/seal-status
    stick-table type ip size 100k expire 30s store http_err_rate(10s)
    http-request track-sc0 src if sys
    http-request deny deny_status 429 if sys !sys_public { sc_http_err_rate(0) gt 30 }
    # A SIGMA handshake (a node joining, a keeper releasing) is three requests that must reach
    # one node: those go to the first node in rotation.
    use_backend custos_sigma if { path_beg /v1/sys/sigma/ }
    default_backend custos_nodes

backend custos_nodes
    balance roundrobin
    # ?strict: 200 only while the node serves (initialised, unsealed, key cache fresh).
    option httpchk GET /v1/sys/health?strict
    http-check expect status 200
EOF
  for n in $(seq "$nodes"); do echo "    server node-$n 127.0.0.1:${node_port[$n]} check"; done
  cat <<EOF

backend custos_sigma
    balance first
EOF
  for n in $(seq "$nodes"); do echo "    server node-$n 127.0.0.1:${node_port[$n]} track custos_nodes/node-$n"; done
} >"$dir/haproxy.cfg"
haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.err" 2>&1 || fail "haproxy rejects $dir/haproxy.cfg" "$dir/haproxy.err"
haproxy -db -f "$dir/haproxy.cfg" </dev/null >"$dir/haproxy.log" 2>>"$dir/haproxy.err" &
record haproxy $!
wait_http "$endpoint/v1/sys/health" $! "$dir/haproxy.err" "haproxy"

# ---- 4. The nodes --------------------------------------------------------------------------
admin_token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -m 0700 "$dir/sim"
store_url="postgresql://custos@127.0.0.1:$pg_primary_port,127.0.0.1:$pg_standby_port/custos?target_session_attrs=read-write&passfile=$dir/pgpass"
for n in $(seq "$nodes"); do
  mkdir -m 0700 "$dir/node-$n" "$dir/node-$n/data"
  (umask 077; echo "$admin_token" >"$dir/node-$n/data/admin.token")
  {
    echo "# dev-cluster.sh: node $n of $nodes."
    echo "[server]"
    echo "listen = \"127.0.0.1:${node_port[$n]}\""
    echo "data_dir = \"$dir/node-$n/data\""
    echo "custody = \"$dir/custody.json\""
    echo "insecure_http = true"
    echo "node_name = \"node-$n\""
    [ "$n" -gt 1 ] && echo "join = \"$endpoint\""
    echo "[tee]"
    echo "backend = \"sim\""
    echo "sim_key_dir = \"$dir/sim\""
    echo "[store]"
    echo "url = \"$store_url\""
  } >"$dir/node-$n/server.toml"
done
unset admin_token
token_file() { echo "$dir/node-$1/data/admin.token"; }
start_node() {  # N
  "$custos" server --config "$dir/node-$1/server.toml" </dev/null >>"$dir/node-$1/server.log" 2>&1 &
  record "node-$1" $!
  node_pid[$1]=$!
}
declare -a node_pid

begin "node 1 on $(node_url 1): start and init"
start_node 1
wait_http "$(node_url 1)/v1/sys/health" "${node_pid[1]}" "$dir/node-1/server.log" "node 1"
run "$setup_log" "$custos" operator init --server "$(node_url 1)" --token-file "$(token_file 1)"

begin "release policy; P1, C1, C2 auto-release to node 1"
"$custos" operator status --server "$(node_url 1)" --token-file "$(token_file 1)" >"$dir/node-1/status.json" \
  2>>"$setup_log" || fail "operator status failed" "$setup_log"
jq -r .evidence "$dir/node-1/status.json" | base64 -d >"$dir/node-1/evidence.bin" ||
  fail "no evidence in node 1's status" "$dir/node-1/status.json"
echo '{"allow_sim": true}' >"$dir/probe-policy.json"
signer="$("$custos" attest verify --evidence "$dir/node-1/evidence.bin" --policy "$dir/probe-policy.json" 2>>"$setup_log" |
          jq -r .signer)"
[ -n "$signer" ] && [ "$signer" != null ] || fail "custos attest verify gave no signer" "$setup_log"
measurement="$(sha256sum "$(dirname "$custos")/custos-enclave" | cut -d' ' -f1)"
[ "$(jq -r .measurement "$dir/node-1/status.json")" = "$measurement" ] ||
  fail "node 1 reports another measurement than sha256(custos-enclave)" "$dir/node-1/status.json"
printf '{"measurements": ["%s"], "signers": ["%s"], "allow_sim": true}\n' "$measurement" "$signer" \
  >"$dir/release-policy.json"
rm -f "$dir/probe-policy.json"
for k in P1 C1 C2; do
  stop_pids $(pids_named "keeper-$k")
  serve_keeper "$k" --auto-release "$(node_url 1)" --release-policy "$dir/release-policy.json" \
    --release-interval-ms 500
done

if [ "$nodes" -gt 1 ]; then
  begin "nodes 2..$nodes: start and join through HAProxy"
  for n in $(seq 2 "$nodes"); do start_node "$n"; done
  for n in $(seq 2 "$nodes"); do
    wait_http "$(node_url "$n")/v1/sys/health" "${node_pid[$n]}" "$dir/node-$n/server.log" "node $n"
  done
fi

begin "access key for the KMS API"
"$custos" operator access-key create --name dev --server "$(node_url 1)" --token-file "$(token_file 1)" \
  >"$dir/credentials" 2>>"$setup_log" || fail "operator access-key create failed" "$setup_log"
chmod 600 "$dir/credentials"
access_key_id="$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$dir/credentials")"
secret_access_key="$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$dir/credentials")"
[ -n "$access_key_id" ] && [ -n "$secret_access_key" ] || fail "no access key in the answer" "$setup_log"
# The XKS proxy API's credential (docs/xks.md), under the prefix dev mode uses.
"$custos" operator xks-credential create --prefix /dev --name dev --server "$(node_url 1)" --token-file "$(token_file 1)" \
  >"$dir/xks-credential.json" 2>>"$setup_log" || fail "operator xks-credential create failed" "$setup_log"
chmod 600 "$dir/xks-credential.json"
xks_access_key_id="$(jq -r .XksProxyAuthenticationCredential.AccessKeyId "$dir/xks-credential.json")"
xks_secret_access_key="$(jq -r .XksProxyAuthenticationCredential.RawSecretAccessKey "$dir/xks-credential.json")"
xks_uri_path="$(jq -r .XksProxyUriPath "$dir/xks-credential.json")"

# ---- 5. Ready: every node unsealed on one root key, HAProxy serving --------------------------
begin "waiting for every node to be unsealed and HAProxy to serve"
deadline=$((SECONDS + wait_s))
root_key_id=""
for n in $(seq "$nodes"); do
  while :; do
    alive "${node_pid[$n]}" || fail "node $n exited" "$dir/node-$n/server.log"
    st="$("$custos" operator status --server "$(node_url "$n")" --token-file "$(token_file "$n")" 2>/dev/null)"
    if [ "$(jq -r .sealed <<<"$st" 2>/dev/null)" = false ]; then
      id="$(jq -r .root_key_id <<<"$st")"
      [ -z "$root_key_id" ] && root_key_id="$id"
      [ "$id" = "$root_key_id" ] || fail "node $n has root key $id, node 1 $root_key_id" "$dir/node-$n/server.log"
      break
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "node $n is still sealed after $wait_s s" "$dir/node-$n/server.log"
    sleep 0.2
  done
done
until [ "$(curl -s --max-time 2 -o "$dir/health.json" -w '%{http_code}' "$endpoint/v1/sys/health")" = 200 ] &&
      [ "$(jq -r .sealed "$dir/health.json" 2>/dev/null)" = false ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "HAProxy does not serve /v1/sys/health" "$dir/haproxy.log"
  sleep 0.2
done
rm -f "$dir/health.json"
# The last node to unseal enters the rotation at its next check (inter 500ms, rise 1).
sleep 0.6

# ---- 6. dev.env, node-N.env, pids ----------------------------------------------------------
write_env() {  # FILE ENDPOINT: dev mode's dev.env lines (no CUSTOS_DEV_PID), 0600, atomically
  (
    umask 077
    printf '%s\n' "CUSTOS_ENDPOINT=$2" "AWS_ACCESS_KEY_ID=$access_key_id" \
      "AWS_SECRET_ACCESS_KEY=$secret_access_key" "AWS_REGION=us-east-1" "AWS_DEFAULT_REGION=us-east-1" \
      "CUSTOS_ADMIN_TOKEN_FILE=$(token_file 1)" "CUSTOS_DATA_DIR=$dir" "CUSTOS_XKS_ENDPOINT=$2" \
      "CUSTOS_XKS_URI_PREFIX=$xks_uri_path" "CUSTOS_XKS_ACCESS_KEY_ID=$xks_access_key_id" \
      "CUSTOS_XKS_SECRET_ACCESS_KEY=$xks_secret_access_key" >"$1.new"
  )
  mv "$1.new" "$1"
}
for n in $(seq "$nodes"); do write_env "$dir/node-$n.env" "$(node_url "$n")"; done
write_env "$dir/dev.env" "$endpoint"
{
  for name in $(seq -f 'node-%g' "$nodes") postgres-primary postgres-standby haproxy keeper-P1 keeper-C1 keeper-C2 keeper-C3; do
    grep "^$name " "$dir/pids"
  done
} >"$dir/pids.new" && mv "$dir/pids.new" "$dir/pids"
ready=1
say "ready in $(since_start) s: $nodes node(s) on root key $root_key_id behind $endpoint"
echo "CUSTOS_ENDPOINT=$endpoint"
for n in $(seq "$nodes"); do echo "node-$n: $(node_url "$n")  ($dir/node-$n.env)"; done
echo "credentials: set -a; . $dir/dev.env; set +a"
echo "stop: $0 --stop $dir"
