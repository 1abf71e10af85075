#!/usr/bin/env bash
# The main demo: real programs on sysemu's syscall layer and virtual network.
# Run by `make demo` (which sets up the venv and the Debian packages first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SYSEMU=${SYSEMU:-.venv/bin/sysemu}
work=$(mktemp -d)
chmod 755 "$work"   # nginx workers (user nobody) read the files
trap 'rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. The syscall table: what sysemu serves, what it leaves to the host"
"$SYSEMU" syscalls --format json | python3 -c '
import collections, json, sys
rows = json.load(sys.stdin)
print(collections.Counter((r["table"], r["action"]) for r in rows))
print("served:", sorted({r["name"] for r in rows if r["action"] == "served"}))'

step "2. python3 -m http.server and curl, both inside one sandbox"
port=$(free_port)
mkdir -p "$work/www" && echo "hello from a server on sysemu's network" > "$work/www/hello.txt"
"$SYSEMU" run -- sh -c "
  cd '$work/www' && python3 -m http.server --bind 127.0.0.1 $port >/dev/null 2>&1 &
  for i in \$(seq 50); do curl -s http://127.0.0.1:$port/hello.txt && break; sleep 0.1; done
  touch '$work/ready'
  for i in \$(seq 50); do [ -e '$work/go' ] && break; sleep 0.1; done
  kill \$!"  &
for i in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.1; done
python3 - "$port" <<'PY'
import socket, sys
s = socket.socket()
err = s.connect_ex(("127.0.0.1", int(sys.argv[1])))
print(f"from outside the sandbox, connect to port {sys.argv[1]}: "
      f"{'connected (!)' if err == 0 else __import__('errno').errorcode[err]}")
PY
touch "$work/go"
wait

step "3. The accept queue: listen(fd, 1), five clients, natively and on sysemu"
echo "-- natively:"
python3 demo/accept_queue.py
echo "-- on sysemu:"
"$SYSEMU" run -- python3 demo/accept_queue.py

step "4. The sandbox's sysctls and /proc views: sysemu run --sysctl net.core.somaxconn=16"
"$SYSEMU" run --sysctl net.core.somaxconn=16 -- python3 -c '
import socket
print("somaxconn in the sandbox:", open("/proc/sys/net/core/somaxconn").read().strip())
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1000)
c = socket.create_connection(s.getsockname())
print(open("/proc/net/tcp").read().rstrip())'

if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  step "5. nginx (master + 2 workers) and wrk, inside one sandbox"
  port=$(free_port)
  mkdir -p "$work/ngx/www" && echo "<h1>nginx on sysemu</h1>" > "$work/ngx/www/index.html"
  cat > "$work/ngx/nginx.conf" <<CONF
worker_processes 2;
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log warn;
events { worker_connections 256; }
http { access_log off;
  client_body_temp_path $work/ngx/b; proxy_temp_path $work/ngx/p; fastcgi_temp_path $work/ngx/f;
  uwsgi_temp_path $work/ngx/u; scgi_temp_path $work/ngx/s;
  server { listen 127.0.0.1:$port; root $work/ngx/www; } }
CONF
  "$SYSEMU" run -- sh -c "nginx -c $work/ngx/nginx.conf -p $work/ngx && sleep 0.5 &&
    curl -s http://127.0.0.1:$port/ && wrk -t1 -c4 -d2s http://127.0.0.1:$port/;
    nginx -c $work/ngx/nginx.conf -p $work/ngx -s quit"
fi

if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  step "6. redis-server and redis-benchmark, inside one sandbox"
  port=$(free_port)
  "$SYSEMU" run -- sh -c "redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --logfile /dev/null && sleep 0.5 &&
    redis-benchmark -p $port -n 10000 -q -t set,get | tr '\r' '\n' | grep 'per second';
    redis-cli -p $port shutdown nosave"
fi
echo
echo "demo done"
