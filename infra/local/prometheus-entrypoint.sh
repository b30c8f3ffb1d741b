#!/bin/sh
# Debian 12's Prometheus (2.42) predates `basic_auth.username_file`: write the scrape config it is given
# (/etc/prometheus/prometheus.yml, the project's infra/prometheus.yml) with Flower's user name and
# password taken from FLOWER_USER / FLOWER_PASSWORD instead of the files, then start it with that config.
set -eu
conf=/tmp/prometheus.yml
umask 077
sed -e "s|username_file: .*|username: \"${FLOWER_USER:?set FLOWER_USER}\"|" \
    -e "s|password_file: .*|password: \"${FLOWER_PASSWORD:?set FLOWER_PASSWORD}\"|" \
    /etc/prometheus/prometheus.yml >"$conf"
exec /usr/bin/prometheus --config.file="$conf" --storage.tsdb.path=/prometheus "$@"
