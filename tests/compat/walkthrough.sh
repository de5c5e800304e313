#!/usr/bin/env bash
# walkthrough.sh KAFKA_VERSION BOOTSTRAP [REPLICATION_FACTOR]
#
# Runs our users' Kafka CLI walkthrough, verbatim, with the Apache Kafka CLI of
# KAFKA_VERSION (fetched by fetch-kafka.sh) against BOOTSTRAP (host:port), from
# a scratch directory holding client.properties, and checks every answer.
# Prints one PASS/FAIL line per step (with the command's output on failure),
# then "walkthrough: N passed, N failed"; exits non-zero if any step failed.
#
# Environment:
#   TRIBUTARY_CACHE   see fetch-kafka.sh
#   CLI_TIMEOUT       seconds allowed per CLI call (default 60)
#   TRACE_APIS=1      also print, per step, the Kafka API requests (key and
#                     version) the CLI sent, from the clients' DEBUG log
#   KEEP_WORKDIR=1    keep the scratch directory
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { echo "usage: $0 KAFKA_VERSION BOOTSTRAP [REPLICATION_FACTOR]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
VERSION=$1 B=$2 RF=${3:-1}
[[ $RF =~ ^[0-9]+$ ]] || usage
CLI_TIMEOUT=${CLI_TIMEOUT:-60}
TOPIC=testtopic
GROUP=walkthrough-group
MESSAGES=(ohayou honmassuka benkyouninarimasu)

KAFKA_HOME=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION
BIN=$KAFKA_HOME/bin

fetch_log=$(mktemp)
if ! "$HERE/fetch-kafka.sh" "$VERSION" >"$fetch_log" 2>&1; then
  cat "$fetch_log" >&2; rm -f "$fetch_log"; exit 1
fi
rm -f "$fetch_log"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-walkthrough.XXXXXX")
cleanup() { if [[ -n ${KEEP_WORKDIR:-} ]]; then echo "scratch dir kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
cd "$WORK"
printf 'security.protocol=PLAINTEXT\n' >client.properties

passed=0 failed=0 step_no=0
RC=0 CMD="" STEP_LOG=""
CUR=$WORK/step

# log4j config for TRACE_APIS: the clients' NetworkClient logs each request it
# sends at DEBUG ("Sending METADATA request with header RequestHeader(apiKey=
# METADATA, apiVersion=12, ...)"); send that to a per-step file, WARN to stderr.
trace_config() { # trace_config LOGFILE -> path of a log4j config
  local f
  if [[ -f $KAFKA_HOME/config/tools-log4j2.properties ]]; then
    f=$CUR.log4j2.properties
    cat >"$f" <<EOF
appender.stderr.type=Console
appender.stderr.name=STDERR
appender.stderr.target=SYSTEM_ERR
appender.stderr.layout.type=PatternLayout
appender.stderr.layout.pattern=[%d] %p %m (%c)%n
appender.stderr.filter.threshold.type=ThresholdFilter
appender.stderr.filter.threshold.level=WARN
appender.trace.type=File
appender.trace.name=TRACE
appender.trace.fileName=$1
appender.trace.layout.type=PatternLayout
appender.trace.layout.pattern=%m%n
rootLogger.level=WARN
rootLogger.appenderRef.stderr.ref=STDERR
logger.nc.name=org.apache.kafka.clients.NetworkClient
logger.nc.level=DEBUG
logger.nc.appenderRef.trace.ref=TRACE
EOF
    echo "-Dlog4j2.configurationFile=$f"
  else
    f=$CUR.log4j.properties
    cat >"$f" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.Threshold=WARN
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.trace=org.apache.log4j.FileAppender
log4j.appender.trace.File=$1
log4j.appender.trace.layout=org.apache.log4j.PatternLayout
log4j.appender.trace.layout.ConversionPattern=%m%n
log4j.logger.org.apache.kafka.clients.NetworkClient=DEBUG, trace
EOF
    echo "-Dlog4j.configuration=file:$f"
  fi
}

# run TOOL ARGS... : run a CLI tool with a timeout; stdin from $STDIN
# (default /dev/null); stdout/stderr to $CUR.out/$CUR.err; status in RC.
run() {
  local tool=$1; shift
  CMD="$tool $*"
  step_no=$((step_no + 1))
  CUR=$WORK/step$step_no
  STEP_LOG=""
  local -a envs=()
  if [[ -n ${TRACE_APIS:-} ]]; then
    STEP_LOG=$CUR.trace
    envs=("KAFKA_LOG4J_OPTS=$(trace_config "$STEP_LOG")")
  fi
  RC=0
  env "${envs[@]}" timeout -k 5 "$CLI_TIMEOUT" "$BIN/$tool" "$@" <"${STDIN:-/dev/null}" >"$CUR.out" 2>"$CUR.err" || RC=$?
}

apis_sent() { # summary of the requests of the last run (TRACE_APIS=1)
  [[ -n $STEP_LOG && -f $STEP_LOG ]] || return 0
  printf '      APIs sent: %s\n' "$(grep -E 'Sending [A-Z_]+ request with header' "$STEP_LOG" | grep -oE 'apiKey=[A-Z_]+, apiVersion=[0-9]+' |
    sed -E 's/apiKey=([A-Z_]+), apiVersion=([0-9]+)/\1 v\2/' | sort | uniq -c |
    awk '{printf "%s%s %s x%d", sep, $2, $3, $1; sep=", "}')"
}

excerpt() { # excerpt FILE: indented; long output cut to its first 10 and last 15 lines
  local n
  n=$(wc -l <"$1")
  if ((n <= 30)); then sed 's/^/      | /' "$1"; else
    head -n 10 "$1" | sed 's/^/      | /'
    printf '      | ... (%d lines omitted) ...\n' $((n - 25))
    tail -n 15 "$1" | sed 's/^/      | /'
  fi
}

pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$1"; apis_sent; }
fail() { # fail NAME REASON
  failed=$((failed + 1))
  printf 'FAIL  %s: %s\n' "$1" "$2"
  printf '      command: %s\n' "$CMD"
  ((RC == 124 || RC == 137)) && printf '      (timed out after %ss)\n' "$CLI_TIMEOUT"
  printf '      exit code: %s\n' "$RC"
  printf '      --- stdout ---\n'; excerpt "$CUR.out"
  printf '      --- stderr ---\n'; excerpt "$CUR.err"
  apis_sent
}

# check NAME REASON TEST...: PASS if the last command exited 0 and TEST holds
check() {
  local name=$1 reason=$2; shift 2
  if ((RC != 0)); then fail "$name" "exit code $RC ($reason)"
  elif "$@"; then pass "$name"
  else fail "$name" "$reason"; fi
}

out_has_line() { grep -qxF -- "$1" "$CUR.out"; }
out_has() { grep -qE -- "$1" "$CUR.out"; }
topic_listed() { run kafka-topics.sh --bootstrap-server "$B" --command-config client.properties --list; out_has_line "$TOPIC"; }

echo "== walkthrough: Kafka $VERSION CLI against $B (replication factor $RF)"

# fail fast (instead of a timeout per step) if nothing listens at BOOTSTRAP
first=${B%%,*} host=${first%:*} port=${first##*:}
host=${host#[}; host=${host%]}
if ! timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null; then
  echo "FAIL  connect to $first: nothing accepts TCP connections there"
  echo "walkthrough: 0 passed, 1 failed"
  exit 1
fi

# -- a leftover testtopic (e.g. from an aborted run) would fail the create:
#    remove it first; not a step of the walkthrough.
if topic_listed && ((RC == 0)); then
  echo "NOTE  $TOPIC exists from an earlier run: deleting it and $GROUP first"
  run kafka-topics.sh --bootstrap-server "$B" --command-config client.properties --delete --topic "$TOPIC" || true
  run kafka-consumer-groups.sh --bootstrap-server "$B" --command-config client.properties --delete --group "$GROUP" || true
  for _ in $(seq 30); do topic_listed || break; sleep 1; done
fi

# 1. create (verbatim)
run kafka-topics.sh --create --bootstrap-server "$B" --command-config client.properties \
  --replication-factor "$RF" --partitions 1 --topic "$TOPIC"
check "kafka-topics.sh --create" "expected 'Created topic $TOPIC.'" out_has_line "Created topic $TOPIC."

# 2. list
run kafka-topics.sh --bootstrap-server "$B" --command-config client.properties --list
check "kafka-topics.sh --list shows $TOPIC" "$TOPIC not listed" out_has_line "$TOPIC"

# 3. describe: one partition, RF replicas all in the ISR, a leader; with BROKER_ZONES
#    ("1:zone-a,2:zone-b,...") also that the replicas sit in min(RF, zones) distinct zones.
distinct_count() { tr ',' '\n' <<<"$1" | grep -c . ; }
describe_ok() {
  out_has "PartitionCount: ?1([^0-9]|$)" && out_has "ReplicationFactor: ?$RF([^0-9]|$)" &&
    out_has "Partition: ?0[[:space:]].*Leader: ?[0-9]+" && ! out_has "Leader: ?(-1|none)" || return 1
  local replicas isr
  replicas=$(grep -oE "Replicas: ?[0-9,]+" "$CUR.out" | head -n1 | sed -E 's/Replicas: ?//')
  isr=$(grep -oE "Isr: ?[0-9,]+" "$CUR.out" | head -n1 | sed -E 's/Isr: ?//')
  [[ $(distinct_count "$replicas") -eq $RF && $(distinct_count "$isr") -eq $RF ]] || return 1
  if [[ -n ${BROKER_ZONES:-} ]]; then
    local zones_total zones_used
    zones_total=$(tr ',' '\n' <<<"$BROKER_ZONES" | cut -d: -f2 | sort -u | grep -c .)
    zones_used=$(for r in ${replicas//,/ }; do tr ',' '\n' <<<"$BROKER_ZONES" | grep "^$r:" | cut -d: -f2; done | sort -u | grep -c .)
    (( zones_used == (RF < zones_total ? RF : zones_total) )) || return 1
  fi
}
run kafka-topics.sh --bootstrap-server "$B" --command-config client.properties --describe --topic "$TOPIC"
check "kafka-topics.sh --describe" "expected PartitionCount: 1, ReplicationFactor: $RF, $RF replicas in sync${BROKER_ZONES:+ across distinct zones} and a Leader" describe_ok

# 4. produce (verbatim). Kafka 4.0 removed the console producer's deprecated
#    --broker-list (3.x still accepts it): use it where the version's --help
#    lists it, else the equivalent --bootstrap-server.
help=$(timeout -k 5 "$CLI_TIMEOUT" "$BIN/kafka-console-producer.sh" --help 2>&1 || true)
if grep -q -- '--broker-list' <<<"$help"; then broker_opt=--broker-list; else
  broker_opt=--bootstrap-server
  echo "NOTE  kafka-console-producer.sh $VERSION has no --broker-list: using --bootstrap-server"
fi
printf '%s\n' "${MESSAGES[@]}" >"$WORK/input.txt"
STDIN=$WORK/input.txt run kafka-console-producer.sh "$broker_opt" "$B" --producer.config client.properties --topic "$TOPIC"
produce_ok() { ! grep -qE 'ERROR|Exception' "$CUR.err"; }
check "kafka-console-producer.sh ($broker_opt) < ${MESSAGES[*]}" "errors on stderr" produce_ok

# 5. consume (verbatim + --max-messages/--timeout-ms so that it ends)
expected=$(printf '%s\n' "${MESSAGES[@]}")
# Kafka 4.4's console consumer prints "Option --consumer.config is deprecated
# ... Use --command-config instead." on stdout: a CLI notice, not a record.
DEPRECATION_RE='^Option --[A-Za-z.-]+ is deprecated'
consumed_ok() {
  if grep -qE "$DEPRECATION_RE" "$CUR.out"; then
    printf 'NOTE  ignoring CLI notice on stdout: %s\n' "$(grep -E "$DEPRECATION_RE" "$CUR.out" | head -n1)"
  fi
  [[ "$(grep -vE "$DEPRECATION_RE" "$CUR.out")" == "$expected" ]]
}
run kafka-console-consumer.sh --bootstrap-server "$B" --consumer.config client.properties --topic "$TOPIC" \
  --from-beginning --max-messages 3 --timeout-ms 30000
check "kafka-console-consumer.sh --from-beginning" "expected exactly: ${MESSAGES[*]}" consumed_ok

# 6. the same with a named group, whose offsets step 7 checks
run kafka-console-consumer.sh --bootstrap-server "$B" --consumer.config client.properties --topic "$TOPIC" \
  --from-beginning --max-messages 3 --timeout-ms 30000 --group "$GROUP"
check "kafka-console-consumer.sh --group $GROUP" "expected exactly: ${MESSAGES[*]}" consumed_ok

# 7. consumer group offsets
group_row() { # CURRENT-OFFSET LOG-END-OFFSET LAG of $TOPIC partition 0, by header name
  awk -v t="$TOPIC" '
    /CURRENT-OFFSET/ { for (i = 1; i <= NF; i++) col[$i] = i; next }
    ("TOPIC" in col) && $col["TOPIC"] == t && $col["PARTITION"] == "0" {
      print $col["CURRENT-OFFSET"], $col["LOG-END-OFFSET"], $col["LAG"] }' "$CUR.out"
}
group_ok() { [[ "$(group_row)" == "3 3 0" ]]; }
run kafka-consumer-groups.sh --bootstrap-server "$B" --command-config client.properties --describe --group "$GROUP"
check "kafka-consumer-groups.sh --describe" "expected CURRENT-OFFSET 3, LOG-END-OFFSET 3, LAG 0 for $TOPIC 0" group_ok

# 8. end offsets (verbatim)
run kafka-get-offsets.sh --bootstrap-server "$B" --topic "$TOPIC"
check "kafka-get-offsets.sh" "expected '$TOPIC:0:3'" out_has_line "$TOPIC:0:3"

# 9./10. topic config
run kafka-configs.sh --bootstrap-server "$B" --command-config client.properties --entity-type topics \
  --entity-name "$TOPIC" --alter --add-config retention.ms=86400000
check "kafka-configs.sh --alter --add-config retention.ms" "expected 'Completed updating config for topic $TOPIC.'" \
  out_has_line "Completed updating config for topic $TOPIC."
run kafka-configs.sh --bootstrap-server "$B" --command-config client.properties --entity-type topics \
  --entity-name "$TOPIC" --describe
check "kafka-configs.sh --describe" "expected retention.ms=86400000" out_has "(^|[[:space:],{])retention\.ms=86400000([^0-9]|$)"

# 11./12. delete; deletion is asynchronous, so poll --list for up to 30 s
run kafka-topics.sh --bootstrap-server "$B" --command-config client.properties --delete --topic "$TOPIC"
check "kafka-topics.sh --delete" "delete failed" true
gone=""
for _ in $(seq 30); do
  if ! topic_listed; then gone=1; break; fi
  sleep 1
done
if [[ -n $gone && $RC -eq 0 ]]; then pass "kafka-topics.sh --list no longer shows $TOPIC"
else fail "kafka-topics.sh --list no longer shows $TOPIC" "still listed after 30 s (or --list failed)"; fi

echo "walkthrough: $passed passed, $failed failed"
((failed == 0))
