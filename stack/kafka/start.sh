#!/bin/bash
# The compose file's Kafka node: format the storage once with the admin's SCRAM credential
# (KRaft keeps credentials in its metadata log, and only an authenticated admin can add
# users later), write the health check's client login, then run the broker.
set -euo pipefail
umask 077
config=/etc/permithub/server.properties
password=$(cat /run/secrets/admin.password)

# The tool's arguments go in a java @argfile, which the launcher expands itself (JDK 9+),
# so the password never shows in the process list.
args=$(mktemp)
printf '%s\n' kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$config" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$password]" > "$args"
java -Xmx256m -cp '/opt/kafka/libs/*' "@$args" | sed "s/$password/***/g"
rm -f "$args"

cat > /tmp/admin-client.properties <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka-ca.crt
PROPERTIES

exec /opt/kafka/bin/kafka-server-start.sh "$config"
