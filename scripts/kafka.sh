#!/usr/bin/env bash
# A real Apache Kafka broker for tests and demos: KRaft, one node (broker + controller),
# bound to 127.0.0.1, its jars fetched from Maven Central with `mvn` (cached under
# ~/.cache/rivulet/tools), run on the machine's Java 17.
#
#   scripts/kafka.sh install                 fetch the jars (idempotent; seconds once cached)
#   scripts/kafka.sh start [DIR]             start (or find running) the broker whose state is in DIR
#                                            (default target/kafka); prints the bootstrap address
#   scripts/kafka.sh stop [DIR]              stop it (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh topic NAME [PARTS] [DIR]  create a topic (if missing)
#
# A second `start` on the same DIR after the broker died (kill -9 included) restarts it on
# the same ports with the same data, as a restarted broker would be.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
version="${RIVULET_KAFKA_VERSION:-4.1.1}"
log4j_version="2.24.3"
tools="${RIVULET_TOOLS:-$HOME/.cache/rivulet/tools}"
home="$tools/kafka-$version"

die() { echo "kafka.sh: $*" >&2; exit 1; }

install() {
  [ -f "$home/.complete" ] && return 0
  command -v java >/dev/null 2>&1 || die "java not found: Kafka needs Java 17 (Debian: openjdk-17-jre-headless)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found: the jars are fetched with Maven (Debian: maven)"
  echo "kafka.sh: fetching Apache Kafka $version jars from Maven Central" >&2
  mkdir -p "$home"
  cat > "$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.rivulet</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$log4j_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$log4j_version</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$home/libs"
  (cd "$home" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime) >&2 \
    || die "mvn could not fetch org.apache.kafka:kafka_2.13:$version"
  for level in INFO WARN; do
    cat > "$home/log4j2-$level.yaml" <<LOG
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: $level
      AppenderRef:
        - ref: STDOUT
LOG
  done
  touch "$home/.complete"
}

java_run() { # CLASS ARGS... (tools: warnings only)
  java -Xmx256m -cp "$home/libs/*" -Dlog4j2.configurationFile="$home/log4j2-WARN.yaml" "$@"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Alive and not a zombie (a killed broker may wait a moment to be reaped).
running() {
  [ -f "$1/pid" ] || return 1
  local state; state="$(awk '{print $3}' "/proc/$(cat "$1/pid")/stat" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != "Z" ]
}

start() {
  local dir; dir="$(mkdir -p "${1:-$here/target/kafka}" && cd "${1:-$here/target/kafka}" && pwd)"
  install
  if running "$dir"; then
    echo "127.0.0.1:$(cat "$dir/port")"
    return 0
  fi
  if [ ! -f "$dir/server.properties" ]; then
    local port controller
    port="$(free_port)"; controller="$(free_port)"
    while [ "$controller" = "$port" ]; do controller="$(free_port)"; done
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    echo "$port" > "$dir/port"
    java_run kafka.tools.StorageTool format -t "$(java_run kafka.tools.StorageTool random-uuid | tail -1)" \
      -c "$dir/server.properties" >/dev/null || die "formatting the KRaft storage in $dir failed"
  fi
  local port; port="$(cat "$dir/port")"
  : > "$dir/broker.log"
  setsid nohup java -Xms256m -Xmx768m -XX:+UseG1GC -cp "$home/libs/*" \
    -Dlog4j2.configurationFile="$home/log4j2-INFO.yaml" kafka.Kafka "$dir/server.properties" \
    >> "$dir/broker.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  for _ in $(seq 1 300); do
    if grep -q "Kafka Server started" "$dir/broker.log"; then
      echo "127.0.0.1:$port"
      return 0
    fi
    running "$dir" || { tail -30 "$dir/broker.log" >&2; die "the broker exited while starting (log: $dir/broker.log)"; }
    sleep 0.2
  done
  die "the broker did not start within 60 s (log: $dir/broker.log)"
}

stop() {
  local dir="${1:-$here/target/kafka}"
  running "$dir" || return 0
  local pid; pid="$(cat "$dir/pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do running "$dir" || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

topic() {
  local name="$1" parts="${2:-1}" dir="${3:-$here/target/kafka}"
  [ -n "$name" ] || die "usage: kafka.sh topic NAME [PARTITIONS] [DIR]"
  install
  java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$(cat "$dir/port")" \
    --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  topic) topic "${2:-}" "${3:-1}" "${4:-}" ;;
  *) die "usage: kafka.sh install | start [DIR] | stop [DIR] | topic NAME [PARTITIONS] [DIR]" ;;
esac
