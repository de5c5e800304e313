import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeMap;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.coordinator.group.GroupCoordinatorRecordSerde;

/**
 * Reads every record of __consumer_offsets with Kafka's own group coordinator record serde
 * (the one a Kafka broker loads the topic with) and prints how many of each record type
 * it read; exits 1 if any record cannot be read.
 *
 * <p>Usage: java -cp "KAFKA/libs/*" DecodeOffsets.java BOOTSTRAP
 */
public final class DecodeOffsets {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("exclude.internal.topics", "false");
        TreeMap<String, Integer> counts = new TreeMap<>();
        int failures = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor("__consumer_offsets")
                .forEach(p -> partitions.add(new TopicPartition(p.topic(), p.partition())));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            var end = consumer.endOffsets(partitions);
            GroupCoordinatorRecordSerde serde = new GroupCoordinatorRecordSerde();
            long deadline = System.currentTimeMillis() + 60_000;
            while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))
                    && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    try {
                        var record = serde.deserialize(ByteBuffer.wrap(r.key()),
                            r.value() == null ? null : ByteBuffer.wrap(r.value()));
                        String type = record.key().getClass().getSimpleName()
                            + (record.value() == null ? " (tombstone)" : "");
                        counts.merge(type, 1, Integer::sum);
                    } catch (RuntimeException e) {
                        failures++;
                        System.out.println("unreadable record at " + r.partition() + "/" + r.offset() + ": " + e);
                    }
                }
            }
        }
        counts.forEach((type, n) -> System.out.println(n + " " + type));
        System.exit(failures == 0 ? 0 : 1);
    }
}
