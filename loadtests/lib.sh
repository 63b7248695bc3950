# Shared shell helpers for the load-test scripts (sourced, not run).

# term_and_wait PID SECONDS: send SIGTERM to PID and wait up to SECONDS for it
# to exit. Returns 0 once it is gone, 1 if it is still running afterwards.
term_and_wait() {
    local pid=$1 secs=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for ((i = 0; i < secs * 4; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    ! kill -0 "$pid" 2>/dev/null
}
