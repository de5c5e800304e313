//! The `authorized_operations` bit fields of Metadata, DescribeCluster and DescribeGroups.
//!
//! Without an authorizer Kafka reports, for a resource, every operation its type supports
//! (`AclEntry.supportedOperations`), one bit per `AclOperation` code. Tributary has no
//! authorizer yet, so it reports the same; an authorizer would filter these sets.

/// `AclOperation` codes, as on the wire.
mod op {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

/// Kafka's `Utils.to32BitField`: a bit per operation code.
const fn bit_field(codes: &[u8]) -> i32 {
    let mut field = 0i32;
    let mut i = 0;
    while i < codes.len() {
        field |= 1 << codes[i];
        i += 1;
    }
    field
}

/// Every operation on a topic.
pub const TOPIC: i32 = bit_field(&[
    op::READ,
    op::WRITE,
    op::CREATE,
    op::DELETE,
    op::ALTER,
    op::DESCRIBE,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
]);

/// Every operation on the cluster.
pub const CLUSTER: i32 = bit_field(&[
    op::CREATE,
    op::ALTER,
    op::DESCRIBE,
    op::CLUSTER_ACTION,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
    op::IDEMPOTENT_WRITE,
]);

/// Every operation on a consumer group.
pub const GROUP: i32 = bit_field(&[op::READ, op::DELETE, op::DESCRIBE]);

/// What a response carries when the request did not ask for authorized operations.
pub const NOT_REQUESTED: i32 = i32::MIN;

/// `set` if the request asked for authorized operations, Kafka's "not provided" otherwise.
pub fn if_requested(requested: bool, set: i32) -> i32 {
    if requested {
        set
    } else {
        NOT_REQUESTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_kafkas() {
        // The values Kafka 3.6 without an authorizer reports (AclEntry.supportedOperations).
        assert_eq!(TOPIC, 3576);
        assert_eq!(CLUSTER, 8096);
        assert_eq!(GROUP, 328);
    }
}
