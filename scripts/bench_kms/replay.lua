-- wrk script for scripts/bench_kms.sh: sends, on every connection and for every request, the
-- one pre-signed KMS request in the file named by CUSTOS_BENCH_REQUEST (written by sign.py:
-- a Lua chunk returning {method, path, headers, body}). Setting wrk.method/path/headers/body in
-- init keeps the request static: wrk formats it once per thread and replays the bytes.
-- No response() callback, so wrk does not hand bodies to Lua; it still counts every status
-- outside 2xx/3xx as "Non-2xx or 3xx responses", which bench_kms.sh treats as a failure.
function init(args)
  local file = os.getenv("CUSTOS_BENCH_REQUEST")
  if file == nil or file == "" then
    error("CUSTOS_BENCH_REQUEST is not set")
  end
  local req = dofile(file)
  wrk.method = req.method
  wrk.path = req.path
  wrk.headers = req.headers -- includes Host exactly as signed
  wrk.body = req.body
end
