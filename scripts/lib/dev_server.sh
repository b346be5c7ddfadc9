# Sourced by the scripts that need a running `custos server --dev` (the benchmarks): start it,
# wait for its dev.env, read dev.env, and stop background processes.
#
# start_dev_server CUSTOS DIR LOG TIMEOUT_S
#   Starts `CUSTOS server --dev --listen 127.0.0.1:0 --data-dir DIR` in the background with its
#   output in LOG, sets server_pid (for the caller's cleanup trap) and returns once DIR/dev.env
#   names the endpoint, the access key and the region. Returns 1, with the reason and the end of
#   LOG on stderr, if the server exits first or TIMEOUT_S passes.
start_dev_server() {
  local custos="$1" dir="$2" log="$3" timeout="$4" v rc deadline
  mkdir -p "$dir"
  "$custos" server --dev --listen 127.0.0.1:0 --data-dir "$dir" >"$log" 2>&1 &
  server_pid=$!
  deadline=$((SECONDS + timeout))
  while :; do
    if [ -f "$dir/dev.env" ]; then
      rc=0
      for v in CUSTOS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION; do
        grep -q "^$v=." "$dir/dev.env" || rc=1
      done
      [ "$rc" = 0 ] && return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid"; rc=$?; server_pid=""
      echo "custos server --dev exited ($rc) before writing dev.env:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "custos server --dev wrote no dev.env within ${timeout} s:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# export_dev_env DIR: exports every NAME=VALUE line of DIR/dev.env.
export_dev_env() {
  local line
  while IFS= read -r line; do
    if [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"; fi
  done <"$1/dev.env"
}

# stop_pid PID: TERM, up to 10 s, then KILL; reaps it (callable from a cleanup trap).
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
