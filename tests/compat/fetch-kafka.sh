#!/usr/bin/env bash
# fetch-kafka.sh VERSION
#
# Fetches the Apache Kafka CLI tools and broker (KRaft) jars of one Kafka
# version from Maven Central with Maven, and lays out a Kafka-like install:
#
#   ${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-VERSION/
#     libs/     every runtime jar (kafka_2.13, kafka-tools, clients, ...)
#     config/   log4j (3.x, reload4j) or log4j2 (4.x) configs
#     bin/      kafka-run-class.sh + one wrapper per CLI tool (see WRAPPERS)
#     .complete marker written last
#
# Idempotent: a complete install is left alone; if only this script changed
# (e.g. the wrapper table), bin/ and config/ are regenerated without Maven.
#
# Environment:
#   TRIBUTARY_CACHE       cache root (default $HOME/.cache/tributary)
#   TRIBUTARY_MAVEN_REPO  optional Maven local repository (default: Maven's own)
#   MVN                   maven executable (default: mvn)
set -euo pipefail

usage() { echo "usage: $0 KAFKA_VERSION   (e.g. 3.6.0, 4.1.0, 4.4.0)" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
VERSION=$1
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || usage

MIN_VERSION=3.6.0
SCALA=2.13
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
RELOAD4J_VERSION=1.2.25 # what Kafka 3.x ships, used only if not resolved transitively

# Kafka artifacts put on the classpath (their transitive runtime deps come too).
ARTIFACTS=(
  "kafka_${SCALA}"          # broker (kafka.Kafka), StorageTool, Scala CLI tools of 3.x
  kafka-tools               # Java CLI tools (TopicCommand in 3.7+, perf tests, ...)
  kafka-clients
  kafka-server-common
  kafka-storage
  kafka-metadata
  kafka-raft
  kafka-group-coordinator
)

# script -> main class, per version: the row with the highest "since" that is
# <= VERSION wins. Taken from the bin/*.sh scripts of the Kafka release tags
# (3.6.0, 3.7.0, 3.8.0, 3.9.0) and, for 4.x, from the classes in the 4.0.0 ..
# 4.4.0 jars (checked with unzip -l). Every class is checked to exist in libs/.
# heap: KAFKA_HEAP_OPTS the real script sets ("-" = kafka-run-class default).
#
# script                      since  main class                                                 heap
WRAPPERS='
kafka-topics.sh               3.6.0  kafka.admin.TopicCommand                                   -
kafka-topics.sh               3.7.0  org.apache.kafka.tools.TopicCommand                        -
kafka-console-producer.sh     3.6.0  kafka.tools.ConsoleProducer                                -Xmx512M
kafka-console-producer.sh     4.0.0  org.apache.kafka.tools.ConsoleProducer                     -Xmx512M
kafka-console-consumer.sh     3.6.0  kafka.tools.ConsoleConsumer                                -Xmx512M
kafka-console-consumer.sh     3.8.0  org.apache.kafka.tools.consumer.ConsoleConsumer            -Xmx512M
kafka-consumer-groups.sh      3.6.0  kafka.admin.ConsumerGroupCommand                           -
kafka-consumer-groups.sh      3.8.0  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand -
kafka-get-offsets.sh          3.6.0  kafka.tools.GetOffsetShell                                 -
kafka-get-offsets.sh          3.7.0  org.apache.kafka.tools.GetOffsetShell                      -
kafka-configs.sh              3.6.0  kafka.admin.ConfigCommand                                  -
kafka-configs.sh              4.4.0  org.apache.kafka.tools.ConfigCommand                       -
kafka-producer-perf-test.sh   3.6.0  org.apache.kafka.tools.ProducerPerformance                 -Xmx512M
kafka-consumer-perf-test.sh   3.6.0  org.apache.kafka.tools.ConsumerPerformance                 -Xmx512M
kafka-verifiable-producer.sh  3.6.0  org.apache.kafka.tools.VerifiableProducer                  -Xmx512M
kafka-verifiable-consumer.sh  3.6.0  org.apache.kafka.tools.VerifiableConsumer                  -Xmx512M
kafka-leader-election.sh      3.6.0  kafka.admin.LeaderElectionCommand                          -
kafka-leader-election.sh      3.7.0  org.apache.kafka.tools.LeaderElectionCommand               -
kafka-broker-api-versions.sh  3.6.0  kafka.admin.BrokerApiVersionsCommand                       -
kafka-broker-api-versions.sh  4.0.0  org.apache.kafka.tools.BrokerApiVersionsCommand            -
kafka-delete-records.sh       3.6.0  org.apache.kafka.tools.DeleteRecordsCommand                -
kafka-log-dirs.sh             3.6.0  org.apache.kafka.tools.LogDirsCommand                      -
kafka-storage.sh              3.6.0  kafka.tools.StorageTool                                    -
kafka-transactions.sh         3.6.0  org.apache.kafka.tools.TransactionsCommand                 -
kafka-server-start.sh         3.6.0  kafka.Kafka                                                -Xmx1G_-Xms1G
'

log() { printf '[fetch-kafka %s] %s\n' "$VERSION" "$*"; }
die() { printf '[fetch-kafka %s] ERROR: %s\n' "$VERSION" "$*" >&2; exit 1; }

# version_le A B: true if A <= B
version_le() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

version_le "$MIN_VERSION" "$VERSION" || die "versions before $MIN_VERSION are not supported (no wrapper table)"

CACHE=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
DEST=$CACHE/kafka-$VERSION
LIBS=$DEST/libs
MARKER=$DEST/.complete
SELF_SUM=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

mkdir -p "$CACHE"
# one fetch per version at a time (e.g. parallel walkthroughs on a fresh machine)
exec 9>"$CACHE/.kafka-$VERSION.lock"
flock 9

if [[ -f $MARKER && -f $LIBS/.complete ]] && grep -qx "fingerprint=$SELF_SUM" "$MARKER"; then
  log "already complete: $DEST"
  exit 0
fi
rm -f "$MARKER"

command -v java >/dev/null || die "java not found (Java 17+ is needed)"
java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[[ ${java_major%%.*} -ge 17 ]] 2>/dev/null || die "Java 17+ is needed, found '${java_major:-unknown}'"

mkdir -p "$DEST"

# ---------------------------------------------------------------- libs/ ----
write_pom() { # write_pom FILE EXTRA_COORDS...   (EXTRA = group:artifact:version)
  local file=$1; shift
  {
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by tributary tests/compat/fetch-kafka.sh -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tributary.compat</groupId>
  <artifactId>kafka-cli-$VERSION</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
EOF
    local a g v rest
    for a in "${ARTIFACTS[@]}"; do
      printf '    <dependency><groupId>org.apache.kafka</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$a" "$VERSION"
    done
    for a in "$@"; do
      g=${a%%:*}; rest=${a#*:}; v=${rest#*:}; a=${rest%%:*}
      printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$g" "$a" "$v"
    done
    printf '  </dependencies>\n</project>\n'
  } >"$file"
}

run_maven() { # run_maven POM OUTDIR
  local pom=$1 out=$2 mvnlog
  mvnlog=$(dirname "$pom")/mvn.log
  local -a cmd=("${MVN:-mvn}" -B -f "$pom")
  [[ -n ${TRIBUTARY_MAVEN_REPO:-} ]] && cmd+=("-Dmaven.repo.local=$TRIBUTARY_MAVEN_REPO")
  cmd+=("$DEPENDENCY_PLUGIN:copy-dependencies" "-DoutputDirectory=$out" -DincludeScope=runtime)
  # Maven's own output goes to mvn.log; print a progress line every 100 downloads.
  if ! "${cmd[@]}" 2>&1 | tee "$mvnlog" | awk '
        /Downloaded from/ { n++; if (n % 100 == 0) { printf "  ... %d files downloaded\n", n; fflush() } }
        END { if (n) printf "  ... %d files downloaded in total\n", n }'; then
    tail -n 40 "$mvnlog" >&2
    die "maven failed (full log: $mvnlog)"
  fi
}

jar_version() { # jar_version DIR ARTIFACT -> version of DIR/ARTIFACT-<version>.jar
  local f
  f=$(find "$1" -maxdepth 1 -regextype posix-extended -regex ".*/$2-[0-9][^/]*\.jar" -printf '%f\n' | head -n1)
  [[ -n $f ]] || return 1
  f=${f#"$2"-}; printf '%s\n' "${f%.jar}"
}

if [[ -f $LIBS/.complete ]]; then
  log "libs already complete ($(find "$LIBS" -name '*.jar' | wc -l) jars)"
else
  start=$SECONDS
  work=$DEST/maven
  partial=$DEST/libs.partial
  rm -rf "$work" "$partial"
  mkdir -p "$work"
  log "resolving org.apache.kafka:{$(IFS=,; echo "${ARTIFACTS[*]}")}:$VERSION from Maven Central"
  write_pom "$work/pom.xml"
  run_maven "$work/pom.xml" "$partial"

  # Kafka's Maven POMs name slf4j-api but (in 4.x) no slf4j binding: the
  # release tarball adds it. Add the binding that matches what resolved.
  extras=()
  slf4j=$(jar_version "$partial" slf4j-api) || die "slf4j-api did not resolve"
  if log4j2=$(jar_version "$partial" log4j-core); then
    if [[ $slf4j == 1.* ]]; then binding=log4j-slf4j-impl; else binding=log4j-slf4j2-impl; fi
    jar_version "$partial" "$binding" >/dev/null || extras+=("org.apache.logging.log4j:$binding:$log4j2")
  elif ! jar_version "$partial" slf4j-reload4j >/dev/null; then
    extras+=("org.slf4j:slf4j-reload4j:$slf4j")
    jar_version "$partial" reload4j >/dev/null || extras+=("ch.qos.reload4j:reload4j:$RELOAD4J_VERSION")
  fi
  if ((${#extras[@]})); then
    log "adding logging backend: ${extras[*]}"
    write_pom "$work/pom.xml" "${extras[@]}"
    run_maven "$work/pom.xml" "$partial"
  fi
  rm -rf "$LIBS"
  mv "$partial" "$LIBS"
  touch "$LIBS/.complete"
  log "libs: $(find "$LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS" | cut -f1) in $((SECONDS - start))s"
fi

# -------------------------------------------------------------- config/ ----
# config/ and bin/ are built in a staging dir and swapped in at the end, so
# CLI runs using this install meanwhile never see half-written files.
STAGE=$DEST/.stage
rm -rf "$STAGE"
CONF=$STAGE/config
BIN=$STAGE/bin
mkdir -p "$CONF" "$BIN"
if jar_version "$LIBS" log4j-core >/dev/null; then
  LOGGING=log4j2
  TOOLS_LOG4J_OPTS='-Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.properties'
  SERVER_LOG4J_OPTS='-Dlog4j2.configurationFile=$base_dir/config/log4j2.properties'
  cat >"$CONF/tools-log4j2.properties" <<'EOF'
# CLI tools: WARN and above to stderr, so stdout only carries tool output.
name=tools
appender.stderr.type=Console
appender.stderr.name=STDERR
appender.stderr.target=SYSTEM_ERR
appender.stderr.layout.type=PatternLayout
appender.stderr.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.stderr.ref=STDERR
EOF
  cat >"$CONF/log4j2.properties" <<'EOF'
# Broker: INFO to stdout (kafka-reference.sh redirects it to a file).
name=server
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.controller.name=org.apache.kafka.controller
logger.controller.level=INFO
EOF
else
  LOGGING=reload4j
  TOOLS_LOG4J_OPTS='-Dlog4j.configuration=file:$base_dir/config/tools-log4j.properties'
  SERVER_LOG4J_OPTS='-Dlog4j.configuration=file:$base_dir/config/log4j.properties'
  cat >"$CONF/tools-log4j.properties" <<'EOF'
# CLI tools: WARN and above to stderr, so stdout only carries tool output.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
EOF
  cat >"$CONF/log4j.properties" <<'EOF'
# Broker: INFO to stdout (kafka-reference.sh redirects it to a file).
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
EOF
fi

# ----------------------------------------------------------------- bin/ ----

# kafka-run-class.sh: like Kafka's, minus JMX/GC-log/daemon handling.
cat >"$BIN/kafka-run-class.sh" <<EOF
#!/usr/bin/env bash
# generated by tributary tests/compat/fetch-kafka.sh for Kafka $VERSION ($LOGGING)
# usage: kafka-run-class.sh MAIN_CLASS [ARGS...]
set -euo pipefail
base_dir=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)
JAVA=java
[[ -n \${JAVA_HOME:-} ]] && JAVA=\$JAVA_HOME/bin/java
LOG_DIR=\${LOG_DIR:-\$base_dir/logs}
KAFKA_HEAP_OPTS=\${KAFKA_HEAP_OPTS:--Xmx256M}
KAFKA_JVM_PERFORMANCE_OPTS=\${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}
KAFKA_LOG4J_OPTS="-Dkafka.logs.dir=\$LOG_DIR \${KAFKA_LOG4J_OPTS:-$TOOLS_LOG4J_OPTS}"
# word splitting of the *_OPTS variables is intended, as in Kafka's script
# shellcheck disable=SC2086
exec "\$JAVA" \$KAFKA_HEAP_OPTS \$KAFKA_JVM_PERFORMANCE_OPTS \$KAFKA_LOG4J_OPTS -cp "\$base_dir/libs/*" \${KAFKA_OPTS:-} "\$@"
EOF

declare -A main_of=() since_of=() heap_of=()
while read -r script since class heap; do
  [[ -z ${script:-} ]] && continue
  version_le "$since" "$VERSION" || continue
  if [[ -z ${since_of[$script]:-} ]] || version_le "${since_of[$script]}" "$since"; then
    main_of[$script]=$class; since_of[$script]=$since; heap_of[$script]=${heap//_/ }
  fi
done <<<"$WRAPPERS"

# every main class must exist in the jars
all_classes=$DEST/.classes
for j in "$LIBS"/kafka*.jar; do unzip -Z1 "$j"; done | grep '\.class$' >"$all_classes"
for script in "${!main_of[@]}"; do
  class=${main_of[$script]}
  grep -qxF "${class//.//}.class" "$all_classes" || die "$script: main class $class not found in $LIBS"
done
rm -f "$all_classes"

for script in $(printf '%s\n' "${!main_of[@]}" | sort); do
  class=${main_of[$script]} heap=${heap_of[$script]}
  {
    printf '#!/usr/bin/env bash\n# generated by tributary tests/compat/fetch-kafka.sh for Kafka %s\n' "$VERSION"
    [[ $heap != - ]] && printf 'export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:-%s}"\n' "$heap"
    if [[ $script == kafka-server-start.sh ]]; then
      printf 'base_dir=$(cd "$(dirname "$0")/.." && pwd)\n'
      printf 'export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:-%s}"\n' "$SERVER_LOG4J_OPTS"
    fi
    printf 'exec "$(dirname "$0")/kafka-run-class.sh" %s "$@"\n' "$class"
  } >"$BIN/$script"
done
chmod +x "$BIN"/*.sh
log "bin: $(printf '%s\n' "${!main_of[@]}" | wc -l) wrappers + kafka-run-class.sh ($LOGGING logging)"
for script in $(printf '%s\n' "${!main_of[@]}" | sort); do
  printf '  %-30s %s\n' "$script" "${main_of[$script]}"
done

for d in config bin; do
  rm -rf "$DEST/$d.old"
  if [[ -d $DEST/$d ]]; then mv "$DEST/$d" "$DEST/$d.old"; fi
  mv "$STAGE/$d" "$DEST/$d"
  rm -rf "$DEST/$d.old"
done
rmdir "$STAGE"

printf 'version=%s\nfingerprint=%s\ncompleted=%s\n' "$VERSION" "$SELF_SUM" "$(date -u +%FT%TZ)" >"$MARKER"
log "complete: $DEST"
