# shellcheck shell=bash
# Helpers shared by the load harnesses benches/run and benches/memory, which source this file
# (it is not run on its own): the processes a harness starts, free ports, bounded waits, and the
# work folder removed at exit.
#
#   bench_work PREFIX                makes $work, a fresh temporary folder, and the exit traps that
#                                    end every process group started here and remove $work
#                                    (kept, and named, when BENCH_KEEP_WORK is set)
#   start OUTPUT CMD...              runs CMD in its own process group, output to OUTPUT; sets last_pid
#   start_pinned OUTPUT CPUS CMD...  the same, pinned to CPUS (taskset list syntax)
#   stop PID                         ends one process group started here (TERM, then KILL after 5 s)
#   free_ports N                     prints N distinct free TCP ports on 127.0.0.1
#   wait_http URL [STATUS] [PID]     bounded wait (15 s) until URL answers (with STATUS); fails
#                                    early when PID has exited; https:// takes any certificate
#                                    (the harnesses' own, on 127.0.0.1)
#
# Needs bash 4.4 or later, setsid, taskset, curl and python3.

started=()   # PIDs of process-group leaders we started (setsid), killed by group at exit
last_pid=""
work=""

cleanup() {
  local pid
  for pid in "${started[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [[ -n "${BENCH_KEEP_WORK:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

bench_work() {   # bench_work PREFIX: sets work, installs the traps
  work="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

start() {   # start OUTPUT CMD...: runs CMD in its own process group; sets last_pid
  local output="$1"; shift
  setsid "$@" >"$output" 2>&1 </dev/null &
  last_pid=$!
  started+=("$last_pid")
}

start_pinned() {   # start_pinned OUTPUT CPUS CMD...: start, pinned to CPUS
  local output="$1" cpus="$2"; shift 2
  start "$output" taskset -c "$cpus" "$@"
}

stop() {   # stop PID: ends one process group we started
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

free_ports() {   # free_ports N: N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_http() {   # wait_http URL [STATUS] [PID]: bounded wait (15 s) until URL answers (with STATUS)
  local code
  for _ in $(seq 150); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
    if [[ -n "${2:-}" && "$code" == "$2" ]] || [[ -z "${2:-}" && "$code" != 000 ]]; then return 0; fi
    [[ -z "${3:-}" ]] || kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
