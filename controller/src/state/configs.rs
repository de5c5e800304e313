//! Dynamic configs: AlterConfigs and IncrementalAlterConfigs (the broker computes the full
//! new set) for topics, one broker, or the cluster-wide broker defaults.

use std::collections::BTreeMap;

use tributary_metadata::rpc::ConfigResource;
use tributary_metadata::topic_config::{topic_config_by_synonym, validate_topic_config};
use tributary_metadata::{ApiError, MetadataImage, ResponseError};

use super::{Change, ControllerState};

impl ControllerState {
    /// Replaces the dynamic configs of `resource` with `configs`.
    pub fn alter_configs(
        &self,
        resource: &ConfigResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Change<Result<(), ApiError>> {
        Change::validated(self.with_configs(resource, configs), validate_only)
    }

    fn with_configs(
        &self,
        resource: &ConfigResource,
        configs: BTreeMap<String, String>,
    ) -> Result<MetadataImage, ApiError> {
        let invalid =
            |e: &dyn std::fmt::Display| ApiError::new(ResponseError::InvalidConfig, e.to_string());
        let mut next = self.next_image();
        match resource {
            ConfigResource::Topic(name) => {
                let topic = next.topics.get_mut(name).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    )
                })?;
                for (k, v) in &configs {
                    validate_topic_config(k, v).map_err(|e| invalid(&e))?;
                }
                topic.configs = configs;
            }
            ConfigResource::Broker(scope) => {
                for (k, v) in &configs {
                    let def = topic_config_by_synonym(k).ok_or_else(|| {
                        invalid(&format!("Cannot update broker config {k} dynamically"))
                    })?;
                    validate_topic_config(def.name, v).map_err(|e| invalid(&e))?;
                }
                match scope {
                    Some(id) if !next.brokers.contains_key(id) => {
                        return Err(ApiError::new(
                            ResponseError::InvalidRequest,
                            format!("Unknown broker {id}"),
                        ))
                    }
                    Some(id) => {
                        next.broker_configs.insert(*id, configs);
                    }
                    None => next.cluster_configs = configs,
                }
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{commit, state_with_topic};

    #[test]
    fn configs_are_validated_before_they_change() {
        let mut state = state_with_topic(2, "t", 1, 2);
        let topic = ConfigResource::Topic("t".into());
        let retention = BTreeMap::from([("retention.ms".into(), "1000".into())]);
        let altered = state.alter_configs(&topic, retention.clone(), false);
        commit(&mut state, altered).unwrap();
        assert_eq!(state.image().topics["t"].configs["retention.ms"], "1000");
        let bogus = state.alter_configs(
            &topic,
            BTreeMap::from([("bogus".into(), "1".into())]),
            false,
        );
        assert_eq!(
            commit(&mut state, bogus).unwrap_err().code,
            ResponseError::InvalidConfig
        );
        let missing = state.alter_configs(&ConfigResource::Topic("u".into()), retention, false);
        assert_eq!(
            commit(&mut state, missing).unwrap_err().code,
            ResponseError::UnknownTopicOrPartition
        );
        let defaults = BTreeMap::from([("log.retention.ms".into(), "5000".into())]);
        let cluster = state.alter_configs(&ConfigResource::Broker(None), defaults, false);
        commit(&mut state, cluster).unwrap();
        assert_eq!(state.image().cluster_configs["log.retention.ms"], "5000");
        let static_only = BTreeMap::from([("num.network.threads".into(), "3".into())]);
        let refused = state.alter_configs(&ConfigResource::Broker(Some(1)), static_only, false);
        assert_eq!(
            commit(&mut state, refused).unwrap_err().code,
            ResponseError::InvalidConfig
        );
    }
}
