#!/usr/bin/env bash
# Make sure RabbitMQ (127.0.0.1:5672, guest/guest) and PostgreSQL (127.0.0.1:5432, user
# postgres, trust) answer: use them if they do, start them if installed, install them with apt
# if absent. With CI=true a server that cannot be brought up fails the run.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do answers "$port" && return 0; sleep 1; done
  echo "error: $name did not start listening on 127.0.0.1:$port within 60 s" >&2
  return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "error: need root to run: $*" >&2; return 1; fi; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "error: $1 is not installed and this is not a Debian-like system." >&2
    echo "Install $1 yourself, start it on 127.0.0.1, and run this again." >&2
    return 1
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# RabbitMQ keeps about three file handles per quorum queue, and Spool has one queue per
# service: with the usual 1024 open files a broker stalls (publishes stop being confirmed) at
# around 300 services. RabbitMQ's production checklist asks for at least 65536.
RABBITMQ_NOFILE=65536

ensure_rabbitmq() {
  if answers 5672; then
    warn_rabbitmq_nofile
    return 0
  fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  echo "starting RabbitMQ" >&2
  as_root bash -c "ulimit -n $RABBITMQ_NOFILE 2>/dev/null || ulimit -n \$(ulimit -Hn); \
    exec rabbitmq-server -detached" >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
}

warn_rabbitmq_nofile() {
  local pid limit
  pid=$(pgrep -f -o 'beam.*-s rabbit' 2>/dev/null) || return 0
  limit=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null) || return 0
  if [ -n "$limit" ] && [ "$limit" != unlimited ] && [ "$limit" -lt "$RABBITMQ_NOFILE" ]; then
    echo "warning: RabbitMQ runs with $limit open files; Spool needs ~3 per service." >&2
    echo "  Restart it with 'ulimit -n $RABBITMQ_NOFILE' to deploy more than ~300 services." >&2
  fi
}

ensure_postgres() {
  if ! answers 5432; then
    ls /etc/postgresql/*/main >/dev/null 2>&1 || apt_install postgresql
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 PostgreSQL
  fi
  # Spool connects as postgres over TCP without a password (a development setup). A cluster
  # freshly installed by apt asks for one: allow it from loopback only.
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    local hba
    hba=$(as_root runuser -u postgres -- psql -Atc 'show hba_file')
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    as_root runuser -u postgres -- psql -Atc 'select pg_reload_conf()' >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null
  fi
}

ensure_rabbitmq
ensure_postgres
echo "RabbitMQ and PostgreSQL answer on 127.0.0.1" >&2
