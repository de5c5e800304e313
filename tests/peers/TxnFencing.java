import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Zombie fencing with the Java client: a second producer with the same transactional.id
 * fences the first (a zombie) mid-transaction, whose open transaction is aborted and whose
 * commit fails; of a committed and an aborted transaction of the new producer, a
 * read_committed consumer sees the committed one only, a read_uncommitted one sees all.
 *
 * <p>Usage: java -cp "KAFKA/libs/*" TxnFencing.java BOOTSTRAP TOPIC (the topic exists)
 */
public final class TxnFencing {
    static final String ID = "fencing-test";

    static KafkaProducer<String, String> producer(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", ID);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    static void send(KafkaProducer<String, String> producer, String topic, String prefix) {
        for (int i = 0; i < 10; i++) {
            producer.send(new ProducerRecord<>(topic, prefix + "-" + i));
        }
        producer.flush();
    }

    static List<String> read(String bootstrap, String topic, String isolation, int want) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", "fencing-reader-" + isolation);
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", isolation);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 20_000;
            while (values.size() < want && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    values.add(r.value());
                }
            }
            // Anything more that would arrive is wrong too.
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofSeconds(2))) {
                values.add(r.value());
            }
        }
        values.sort(null);
        return values;
    }

    public static void main(String[] args) {
        String bootstrap = args[0];
        String topic = args[1];
        KafkaProducer<String, String> zombie = producer(bootstrap);
        zombie.initTransactions();
        zombie.beginTransaction();
        send(zombie, topic, "zombie");

        KafkaProducer<String, String> live = producer(bootstrap);
        live.initTransactions();
        try {
            send(zombie, topic, "zombie-late");
            zombie.commitTransaction();
            System.out.println("FAIL: the fenced producer committed");
            System.exit(1);
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            System.out.println("zombie fenced: " + e.getClass().getSimpleName());
        } catch (KafkaException e) {
            if (!(e.getCause() instanceof ProducerFencedException
                    || e.getCause() instanceof InvalidProducerEpochException)) {
                throw e;
            }
            System.out.println("zombie fenced: " + e.getCause().getClass().getSimpleName());
        }
        zombie.close(Duration.ZERO);

        live.beginTransaction();
        send(live, topic, "committed");
        live.commitTransaction();
        live.beginTransaction();
        send(live, topic, "aborted");
        live.abortTransaction();
        live.close();

        List<String> committed = read(bootstrap, topic, "read_committed", 10);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            expected.add("committed-" + i);
        }
        if (!committed.equals(expected)) {
            System.out.println("FAIL: read_committed read " + committed);
            System.exit(1);
        }
        List<String> all = read(bootstrap, topic, "read_uncommitted", 30);
        if (all.size() < 30 || !all.containsAll(expected)) {
            System.out.println("FAIL: read_uncommitted read " + all.size() + " records: " + all);
            System.exit(1);
        }
        System.out.println("read_committed: the 10 committed records only; read_uncommitted: " + all.size());
    }
}
