# Sourced: a PostgreSQL server of its own for the tests, on loopback.
#   start_postgres DIR PORT  installs Debian's postgresql if the machine has
#     none, makes a cluster in DIR (owned by `nobody` when run as root:
#     initdb refuses root), starts it on 127.0.0.1:PORT with trust auth for
#     the user `berth`, and sets $pg_url (its `postgres` database) and
#     $pg_ctl (the command, as its owner, to which `stop` or `start` is added).
#     DIR's parent must be searchable by others.

start_postgres() {
  local dir=$1 port=$2 bin as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "# installing postgresql"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends postgresql; } >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown nobody "$dir"
    as=(runuser -u nobody --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U berth --auth=trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
  pg_ctl=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w
    -o "-k $dir -c listen_addresses=127.0.0.1 -p $port -c max_connections=400")
  "${pg_ctl[@]}" start >/dev/null || { tail -n 20 "$dir/server.log"; return 1; }
  pg_url="postgres://berth@127.0.0.1:$port/postgres"
}
