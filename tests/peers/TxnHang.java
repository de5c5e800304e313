import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Leaves a transaction open: begins one, writes to partition 0 of TOPIC, and halts the
 * JVM without committing or aborting (as a crashed producer would). Its coordinator would
 * abort it only after its 10-minute timeout.
 *
 * <p>Usage: java -cp "KAFKA/libs/*" TxnHang.java BOOTSTRAP TOPIC TRANSACTIONAL_ID
 */
public final class TxnHang {
    public static void main(String[] args) {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("transactional.id", args[2]);
        p.put("transaction.timeout.ms", "600000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        producer.beginTransaction();
        for (int i = 0; i < 5; i++) {
            producer.send(new ProducerRecord<>(args[1], 0, null, "open-" + i));
        }
        producer.flush();
        System.out.println("transaction left open");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
