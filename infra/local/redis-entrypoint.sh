#!/bin/sh
# As the official image: all addresses, no protected mode (the compose network is the boundary), whatever
# arguments the compose file passes (its command starts with redis-server).
[ "${1:-}" = redis-server ] && shift
exec redis-server --bind 0.0.0.0 --protected-mode no "$@"
