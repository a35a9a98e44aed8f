#!/usr/bin/env bash
# Create or update the database accounts of accounts.sql (administrator, delegate, collector,
# datavision, retention), with their passwords taken from the environment and fed to the mariadb
# client on its standard input (never on a command line, never in a file):
#   DB_ADMIN_PASSWORD  DB_DELEGATE_PASSWORD  DB_COLLECTOR_PASSWORD  DB_DATAVISION_PASSWORD
#   DB_RETENTION_PASSWORD
# Empty or placeholder (change-me…) passwords are refused.
#
# By hand (after schema.sql; re-run it to rotate passwords):
#   DB_ADMIN_PASSWORD=… DB_DELEGATE_PASSWORD=… DB_COLLECTOR_PASSWORD=… DB_DATAVISION_PASSWORD=… \
#     DB_RETENTION_PASSWORD=… ./accounts.sh plant -u root -p   # the database, then any mariadb client options
#
# In the MariaDB docker image: mount it in /docker-entrypoint-initdb.d/ after schema.sql (e.g. as
# 02-accounts.sh) and accounts.sql anywhere outside that folder, named by ACCOUNTS_SQL (default: next
# to this script). The image runs it once, on an empty data volume, on MARIADB_DATABASE.

# True for the placeholders of plantmodel/placeholders.py (one list, repeated here: no Python in
# the MariaDB image).
plant_placeholder() {
    case ${1,,} in
        *change-me* | *changeme* | *change_me* | *secret* | *placeholder* | *xxx*) return 0 ;;
    esac
    return 1
}

plant_accounts() {
    local sql=${ACCOUNTS_SQL:-$(dirname "${BASH_SOURCE[0]}")/accounts.sql}
    local var value hex sets=""
    if [[ ! -r $sql ]]; then
        echo "accounts.sh: cannot read $sql (set ACCOUNTS_SQL)" >&2
        return 2
    fi
    for var in DB_ADMIN_PASSWORD DB_DELEGATE_PASSWORD DB_COLLECTOR_PASSWORD DB_DATAVISION_PASSWORD \
               DB_RETENTION_PASSWORD; do
        value=${!var:-}
        if [[ -z $value ]]; then
            echo "accounts.sh: $var is not set" >&2
            return 2
        fi
        # The services' driver (PyMySQL) sends a password as latin-1: a non-ASCII one would never work.
        if [[ $(LC_ALL=C; [[ $value =~ ^[\ -~]+$ ]] && echo ok) != ok ]]; then
            echo "accounts.sh: $var must be printable ASCII" >&2
            return 2
        fi
        if plant_placeholder "$value"; then
            echo "accounts.sh: $var is a placeholder: set a real secret" >&2
            return 2
        fi
        # In hex: no quoting of any character can go wrong.
        hex=$(printf '%s' "$value" | od -An -v -tx1 | tr -d ' \n')
        var=${var#DB_}
        sets+="SET @${var,,} = CONVERT(UNHEX('$hex') USING utf8mb4);"$'\n'
    done
    if declare -F docker_process_sql >/dev/null; then
        # Sourced by the image's entrypoint: its client, as root, on MARIADB_DATABASE. Root's
        # password comes from the same .env: refuse its placeholder too.
        if plant_placeholder "${MARIADB_ROOT_PASSWORD:-}"; then
            echo "accounts.sh: MARIADB_ROOT_PASSWORD is a placeholder: set a real one in .env, then remove the mariadb-data volume (docker compose down -v): the image has already set root's password" >&2
            return 2
        fi
        { printf '%s' "$sets"; cat "$sql"; } | docker_process_sql
    else
        if [[ $# -lt 1 || $1 == -* ]]; then
            echo "usage: accounts.sh DATABASE [mariadb client options, e.g. -u root -p]" >&2
            return 2
        fi
        local database=$1
        shift
        { printf '%s' "$sets"; cat "$sql"; } | mariadb "$@" "$database"
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    plant_accounts "$@"
else
    plant_accounts
fi
