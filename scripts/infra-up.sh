#!/usr/bin/env bash
# Bring up the local infrastructure RMS needs, without Docker, on a Debian-like machine:
# PostgreSQL (127.0.0.1:5432, database "test"), Redis (6379), RabbitMQ (5672) and
# ZooKeeper (2181, installed from Debian's zookeeperd package when missing).
#
# Idempotent: a dependency whose port already answers is left alone. Prints one line per
# dependency saying what it found and what it did; slow steps print a progress note on
# stderr; command output goes to log files under $LOG_DIR. Exits non-zero, naming the
# dependency, when one does not come up in time.
#
# Environment: SKIP_ZOOKEEPER=1 skips ZooKeeper; SKIP_CHROMIUM=1 skips installing Chromium
# (the browser test of the dashboard needs /usr/bin/chromium).
# With Docker, use docker-compose.yml instead.
set -euo pipefail

HOST=127.0.0.1
WAIT_SECS=60            # per dependency
RABBITMQ_WAIT_SECS=90   # RabbitMQ usually needs 10-30 s, more on a cold, busy machine
APT_LOCK_SECS=300
ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh
ZK_CFG=/etc/zookeeper/conf/zoo.cfg
LOG_DIR="${TMPDIR:-/tmp}/rms-infra"
mkdir -p "$LOG_DIR"

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

have() { command -v "$1" >/dev/null 2>&1; }
note() { printf '  ... %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Run "$@" with a time limit when coreutils' timeout is there.
with_timeout() {
  local secs=$1; shift
  if have timeout; then timeout "$secs" "$@"; else "$@"; fi
}

# Does host:port accept a TCP connection? bash's /dev/tcp with a timeout, else nc.
port_open() {
  local host=$1 port=$2
  if have timeout; then
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
  elif have nc; then
    nc -z -w 2 "$host" "$port" >/dev/null 2>&1
  else
    bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
  fi
}

# Send a short text command to host:port and print the reply (empty on failure).
tcp_say() {
  local host=$1 port=$2 text=$3
  # shellcheck disable=SC2016 # $0..$2 are expanded by the inner bash
  with_timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "%b" "$2" >&3 && cat <&3' \
    "$host" "$port" "$text" 2>/dev/null || true
}

# wait_port NAME PORT SECS [LOGFILE]: wait until HOST:PORT answers, else die naming NAME.
wait_port() {
  local name=$1 port=$2 secs=$3 log=${4:-}
  local deadline=$((SECONDS + secs))
  until port_open "$HOST" "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      if [ -n "$log" ] && [ -s "$log" ]; then
        printf -- '--- last lines of %s ---\n' "$log" >&2
        tail -n 15 "$log" >&2 || true
      fi
      die "$name did not come up: nothing answers on $HOST:$port after ${secs}s"
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------
up_postgres() {
  local did log="$LOG_DIR/postgresql.log"
  if port_open "$HOST" 5432; then
    did="already running on $HOST:5432"
  else
    have pg_ctlcluster || die "PostgreSQL: nothing on $HOST:5432 and pg_ctlcluster not found (apt-get install postgresql)"
    local ver
    # shellcheck disable=SC2012 # version directory names are plain numbers
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$ver" ] || die "PostgreSQL: nothing on $HOST:5432 and no cluster under /etc/postgresql"
    # Non-zero also when the cluster is already starting; the port wait below decides.
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >"$log" 2>&1 ||
      note "PostgreSQL: pg_ctlcluster exited non-zero (log: $log); waiting for the port anyway"
    wait_port PostgreSQL 5432 "$WAIT_SECS" "$log"
    did="started cluster $ver/main, listening on $HOST:5432"
  fi

  # Make sure database "test" exists (trust auth as user postgres).
  if ! have psql; then
    printf 'PostgreSQL: %s; psql not found, database "test" not checked\n' "$did"
    return 0
  fi
  local exists="" deadline=$((SECONDS + WAIT_SECS))
  # Retry: right after a start the server may still answer "the database system is starting up".
  until exists=$(psql -h "$HOST" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>>"$log"); do
    [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL: port answers but psql -h $HOST -U postgres fails (log: $log)"
    sleep 1
  done
  if [ "$exists" = "1" ]; then
    did="$did; database test exists"
  else
    psql -h "$HOST" -U postgres -d postgres -qc 'CREATE DATABASE test' >>"$log" 2>&1 ||
      die "PostgreSQL: could not create database test (log: $log)"
    did="$did; created database test"
  fi
  printf 'PostgreSQL: %s\n' "$did"
}

# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------
up_redis() {
  local did
  if port_open "$HOST" 6379; then
    did="already running on $HOST:6379"
  else
    have redis-server || die "Redis: nothing on $HOST:6379 and redis-server not found (apt-get install redis-server)"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
      die "Redis: redis-server failed to start (see /var/log/redis/ci.log)"
    wait_port Redis 6379 "$WAIT_SECS" /var/log/redis/ci.log
    did="started redis-server (no persistence), listening on $HOST:6379"
  fi
  if [[ "$(tcp_say "$HOST" 6379 'PING\r\nQUIT\r\n')" == *PONG* ]]; then
    did="$did, PING -> PONG"
  fi
  printf 'Redis: %s\n' "$did"
}

# ---------------------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------------------
up_rabbitmq() {
  local did log="$LOG_DIR/rabbitmq.log"
  if port_open "$HOST" 5672; then
    did="already running on $HOST:5672"
  else
    have rabbitmq-server || die "RabbitMQ: nothing on $HOST:5672 and rabbitmq-server not found (apt-get install rabbitmq-server)"
    if pgrep -f 'beam.*-s rabbit' >/dev/null 2>&1; then
      note "RabbitMQ: a node is already booting; waiting up to ${RABBITMQ_WAIT_SECS}s for $HOST:5672"
      did="found a node still booting, waited; listening on $HOST:5672"
    else
      note "RabbitMQ: starting rabbitmq-server -detached; waiting up to ${RABBITMQ_WAIT_SECS}s for $HOST:5672"
      rabbitmq-server -detached >"$log" 2>&1 ||
        note "RabbitMQ: rabbitmq-server -detached exited non-zero (log: $log); waiting for the port anyway"
      did="started rabbitmq-server -detached, listening on $HOST:5672"
    fi
    local t0=$SECONDS
    wait_port RabbitMQ 5672 "$RABBITMQ_WAIT_SECS" "$log"
    did="$did (after $((SECONDS - t0))s)"
  fi
  printf 'RabbitMQ: %s\n' "$did"
}

# ---------------------------------------------------------------------------------------
# ZooKeeper
# ---------------------------------------------------------------------------------------
wait_for_apt_lock() {
  local deadline=$((SECONDS + APT_LOCK_SECS)) said=""
  while pgrep -x 'apt|apt-get|aptitude|dpkg|unattended-upgr' >/dev/null 2>&1; do
    if [ -z "$said" ]; then note "another apt/dpkg process is running; waiting for it"; said=1; fi
    [ "$SECONDS" -lt "$deadline" ] || break   # apt's own DPkg::Lock::Timeout takes over
    sleep 2
  done
}

# apt_install PKG...: apt-get update + install, retried once. Output goes to $LOG_DIR/apt.log.
apt_install() {
  local log="$LOG_DIR/apt.log" attempt
  have apt-get || return 1
  for attempt in 1 2; do
    wait_for_apt_lock
    note "apt-get install $* (attempt $attempt; log: $log)"
    if { $SUDO apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECS" update &&
         $SUDO env DEBIAN_FRONTEND=noninteractive \
           apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECS" install -y "$@"; } >>"$log" 2>&1; then
      return 0
    fi
    if [ "$attempt" -eq 1 ]; then note "apt-get failed; retrying once in 5s"; sleep 5; fi
  done
  return 1
}

# Best evidence that ZooKeeper serves: ruok -> imok, else srvr -> "Mode: ...". ZooKeeper
# 3.5+ whitelists only "srvr" by default (4lw.commands.whitelist), so neither is required:
# an accepting port is enough. Prints a short description.
zk_health() {
  local deadline=$((SECONDS + 15)) reply mode
  while :; do
    reply=$(tcp_say "$HOST" 2181 ruok)
    if [ "$reply" = "imok" ]; then echo "ruok -> imok"; return 0; fi
    reply=$(tcp_say "$HOST" 2181 srvr)
    mode=$(printf '%s\n' "$reply" | sed -n 's/^Mode: *//p' | head -n 1)
    if [ -n "$mode" ]; then echo "srvr -> Mode: $mode (ruok not whitelisted)"; return 0; fi
    # "not currently serving requests" while it starts: keep trying for a little while.
    if [ "$SECONDS" -ge "$deadline" ] || [[ "$reply" == *"not in the whitelist"* ]]; then
      echo "port accepts; ruok/srvr gave no answer (4lw.commands.whitelist in $ZK_CFG)"
      return 0
    fi
    sleep 1
  done
}

up_zookeeper() {
  if [ "${SKIP_ZOOKEEPER:-}" = "1" ]; then
    printf 'ZooKeeper: skipped (SKIP_ZOOKEEPER=1)\n'
    return 0
  fi
  local did=() log="$LOG_DIR/zookeeper.log"

  if port_open "$HOST" 2181 && [ -x "$ZK_SERVER" ]; then
    printf 'ZooKeeper: already running on %s:2181 (%s)\n' "$HOST" "$(zk_health)"
    return 0
  elif port_open "$HOST" 2181; then
    printf 'ZooKeeper: already running on %s:2181, not from zookeeperd (%s)\n' "$HOST" "$(zk_health)"
    return 0
  fi

  if [ ! -x "$ZK_SERVER" ]; then
    note "ZooKeeper: $ZK_SERVER missing; installing zookeeperd from Debian's packages"
    if apt_install zookeeperd; then
      did+=("installed zookeeperd")
    elif [ -x "$ZK_SERVER" ]; then
      # The package's postinst tries to start the service (invoke-rc.d); without an init
      # system that can fail and make apt-get exit non-zero although the files are in place.
      did+=("installed zookeeperd (apt-get reported an error, see $LOG_DIR/apt.log; files are in place)")
    else
      die "ZooKeeper: installing zookeeperd failed (log: $LOG_DIR/apt.log)"
    fi
  fi

  # zookeeperd depends on a JRE, so apt normally brought one in.
  if ! have java; then
    note "ZooKeeper: java not found; installing default-jre-headless"
    apt_install default-jre-headless || die "ZooKeeper: no java and installing default-jre-headless failed (log: $LOG_DIR/apt.log)"
    did+=("installed default-jre-headless")
  fi
  local java_ver
  java_ver=$(java -version 2>&1 | head -n 1 || true)

  if port_open "$HOST" 2181; then
    did+=("started by the package's own scripts")   # where an init system ran its postinst
  else
    "$ZK_SERVER" start >"$log" 2>&1 ||
      note "ZooKeeper: zkServer.sh start exited non-zero (log: $log); waiting for the port anyway"
    local out
    # shellcheck disable=SC2012 # newest daemon .out file
    out=$(ls -t /var/log/zookeeper/zookeeper-*-server-*.out 2>/dev/null | head -n 1 || true)
    wait_port ZooKeeper 2181 "$WAIT_SECS" "${out:-$log}"
    did+=("started with zkServer.sh start")
  fi

  local joined="" part
  for part in "${did[@]}"; do joined="${joined:+$joined, }$part"; done
  printf 'ZooKeeper: %s, listening on %s:2181 (%s; java: %s)\n' \
    "$joined" "$HOST" "$(zk_health)" "$java_ver"
}

# ---------------------------------------------------------------------------------------
# Chromium, for the dashboard's browser test (not a service: only installed)
# ---------------------------------------------------------------------------------------
up_chromium() {
  if [ "${SKIP_CHROMIUM:-}" = 1 ]; then
    printf 'Chromium: skipped (SKIP_CHROMIUM=1); the dashboard browser test will be skipped\n'
    return
  fi
  if [ -x /usr/bin/chromium ]; then
    printf 'Chromium: already installed (%s)\n' "$(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
    return
  fi
  note "Chromium: /usr/bin/chromium missing; installing Debian's chromium package"
  apt_install chromium || die "Chromium: installing the chromium package failed (log: $LOG_DIR/apt.log)"
  [ -x /usr/bin/chromium ] || die "Chromium: the chromium package installed no /usr/bin/chromium"
  printf 'Chromium: installed (%s)\n' "$(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
}

up_postgres
up_redis
up_rabbitmq
up_zookeeper
up_chromium
printf 'infra-up: all dependencies are up (logs in %s)\n' "$LOG_DIR"
