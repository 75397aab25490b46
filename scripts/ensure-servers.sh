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

ensure_rabbitmq() {
  answers 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  echo "starting RabbitMQ" >&2
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
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
