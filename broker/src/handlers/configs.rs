//! Configuration APIs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics
//! and brokers.

use std::collections::BTreeMap;
use tributary_metadata::ResponseError;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource as IncrementalResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{sb, ErrorFields, RequestContext};
use crate::broker::metadata_cache::config_layers;
use crate::broker::Broker;
use crate::config::BROKER_SETTINGS;
use tributary_metadata::rpc::ConfigResource;
use tributary_metadata::topic_config::{ConfigLayers, ConfigSource, ConfigType, TOPIC_CONFIGS};
use tributary_metadata::ApiError;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn synonyms(
    layers: &ConfigLayers<'_>,
    name: &'static str,
    broker_name: &'static str,
    default: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    let layered = [
        (layers.topic, name, ConfigSource::DynamicTopic),
        (layers.broker, broker_name, ConfigSource::DynamicBroker),
        (
            layers.cluster_default,
            broker_name,
            ConfigSource::DynamicDefaultBroker,
        ),
        (
            layers.static_broker,
            broker_name,
            ConfigSource::StaticBroker,
        ),
    ];
    for (map, key, source) in layered {
        if let Some(v) = map.and_then(|m| m.get(key)) {
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(sb(key))
                    .with_value(Some(sb(v.clone())))
                    .with_source(source as i8),
            );
        }
    }
    out.push(
        DescribeConfigsSynonym::default()
            .with_name(sb(broker_name))
            .with_value(Some(sb(default)))
            .with_source(ConfigSource::Default as i8),
    );
    out
}

/// The config entries of one described resource.
type DescribedConfigs = Result<Vec<DescribeConfigsResourceResult>, ApiError>;

fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{name}' does not exist."),
    )
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<String>>,
    req: &DescribeConfigsRequest,
) -> DescribedConfigs {
    let image = broker.metadata.image();
    let topic = image.topics.get(name).ok_or_else(|| unknown_topic(name))?;
    let layers = config_layers(&broker.config, &image, Some(topic));
    Ok(TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|def| {
            let (value, source) = layers.resolve(def);
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(sb(def.name))
                .with_value(Some(sb(value)))
                .with_config_source(source as i8)
                .with_config_type(def.config_type as i8);
            if req.include_synonyms {
                entry = entry.with_synonyms(synonyms(
                    &layers,
                    def.name,
                    def.broker_synonym,
                    def.default,
                ));
            }
            if req.include_documentation {
                entry = entry.with_documentation(Some(sb(def.doc)));
            }
            entry
        })
        .collect())
}

/// A broker's configs (`name` is its id), or the cluster-wide defaults (`name` empty).
fn describe_broker(
    broker: &Broker,
    req: &DescribeConfigsRequest,
    name: &str,
    keys: &Option<Vec<String>>,
) -> DescribedConfigs {
    let image = broker.metadata.image();
    let per_broker = if name.is_empty() {
        None
    } else {
        match name.parse::<i32>() {
            Ok(id) if id == broker.config.broker_id => image.broker_configs.get(&id),
            _ => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} but received {name}",
                        broker.config.broker_id
                    ),
                ))
            }
        }
    };
    let layers = ConfigLayers {
        topic: None,
        broker: per_broker,
        cluster_default: Some(&image.cluster_configs),
        static_broker: if name.is_empty() {
            None
        } else {
            Some(&broker.config.settings)
        },
    };
    let wanted = |n: &str| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == n));
    let mut out = Vec::new();
    for def in TOPIC_CONFIGS.iter().filter(|d| wanted(d.broker_synonym)) {
        if out
            .iter()
            .any(|e: &DescribeConfigsResourceResult| e.name.as_str() == def.broker_synonym)
        {
            continue;
        }
        let (value, source) = layers.resolve(def);
        // Only dynamic entries are reported for the cluster-default resource, as Kafka does.
        if name.is_empty() && source != ConfigSource::DynamicDefaultBroker {
            continue;
        }
        let mut entry = DescribeConfigsResourceResult::default()
            .with_name(sb(def.broker_synonym))
            .with_value(Some(sb(value)))
            .with_config_source(source as i8)
            .with_config_type(def.config_type as i8);
        if req.include_synonyms {
            let mut syns = synonyms(&layers, def.broker_synonym, def.broker_synonym, def.default);
            syns.retain(|s| s.source != ConfigSource::DynamicTopic as i8);
            entry = entry.with_synonyms(syns);
        }
        out.push(entry);
    }
    if !name.is_empty() {
        for (key, default) in BROKER_SETTINGS.iter().filter(|(k, _)| wanted(k)) {
            let (value, source) = match broker.config.settings.get(*key) {
                Some(v) => (v.clone(), ConfigSource::StaticBroker),
                None => (default.to_string(), ConfigSource::Default),
            };
            out.push(
                DescribeConfigsResourceResult::default()
                    .with_name(sb(*key))
                    .with_value(Some(sb(value)))
                    .with_read_only(true)
                    .with_config_source(source as i8)
                    .with_config_type(ConfigType::String as i8),
            );
        }
    }
    Ok(out)
}

/// DescribeConfigs for TOPIC and BROKER resources.
pub async fn handle_describe_configs(
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|r| {
            let keys = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs = match r.resource_type {
                TOPIC => describe_topic(&ctx.broker, &r.resource_name, &keys, &req),
                BROKER => describe_broker(&ctx.broker, &req, &r.resource_name, &keys),
                other => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match configs {
                Ok(configs) => result.with_configs(configs),
                Err(e) => result.with_error(e),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn scope(broker: &Broker, resource_type: i8, name: &str) -> Result<ConfigResource, ApiError> {
    match resource_type {
        TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        BROKER => match name.parse::<i32>() {
            Ok(id)
                if broker
                    .metadata
                    .with_image(|img| img.brokers.contains_key(&id)) =>
            {
                Ok(ConfigResource::Broker(Some(id)))
            }
            _ => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown broker {name}"),
            )),
        },
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

fn current_configs(
    broker: &Broker,
    resource: &ConfigResource,
) -> Result<BTreeMap<String, String>, ApiError> {
    let image = broker.metadata.image();
    match resource {
        ConfigResource::Topic(name) => image
            .topics
            .get(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| unknown_topic(name)),
        ConfigResource::Broker(Some(id)) => {
            Ok(image.broker_configs.get(id).cloned().unwrap_or_default())
        }
        ConfigResource::Broker(None) => Ok(image.cluster_configs.clone()),
    }
}

/// A resource of either AlterConfigs flavour: what it names, how its new dynamic config
/// set follows from the current one, and the entry its outcome is reported in.
trait AlterTarget {
    type Entry: ErrorFields;

    fn resource_type(&self) -> i8;
    fn resource_name(&self) -> &StrBytes;
    /// The new set, given the resource's current one (only the incremental flavour uses it).
    fn new_configs(
        &self,
        current: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ApiError>;
    fn entry(&self) -> Self::Entry;
}

/// The accessors both flavours share: their resources and entries have the same fields
/// under different types.
macro_rules! resource_fields {
    ($entry:ident) => {
        fn resource_type(&self) -> i8 {
            self.resource_type
        }

        fn resource_name(&self) -> &StrBytes {
            &self.resource_name
        }

        fn entry(&self) -> $entry {
            $entry::default()
                .with_resource_type(self.resource_type)
                .with_resource_name(self.resource_name.clone())
        }
    };
}

/// AlterConfigs replaces the whole set.
impl AlterTarget for AlterConfigsResource {
    type Entry = AlterConfigsResourceResponse;
    resource_fields!(AlterConfigsResourceResponse);

    fn new_configs(
        &self,
        _current: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        Ok(self
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect())
    }
}

/// IncrementalAlterConfigs applies per-key operations to the current set.
impl AlterTarget for IncrementalResource {
    type Entry = IncrementalResult;
    resource_fields!(IncrementalResult);

    fn new_configs(
        &self,
        current: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let mut configs = current;
        apply_operations(&mut configs, &self.configs)?;
        Ok(configs)
    }
}

/// Both AlterConfigs flavours, resource by resource: resolve the resource, compute its new
/// dynamic config set from the current one, and have the controller replace the set.
async fn alter_each<R: AlterTarget>(
    ctx: &RequestContext,
    resources: &[R],
    validate_only: bool,
) -> Vec<R::Entry> {
    let mut entries = Vec::with_capacity(resources.len());
    for r in resources {
        let outcome = async {
            let resource = scope(&ctx.broker, r.resource_type(), r.resource_name())?;
            // The resource must exist before its new values are looked at (a missing topic
            // is UNKNOWN_TOPIC_OR_PARTITION, whatever the values), as Kafka checks them.
            let current = current_configs(&ctx.broker, &resource)?;
            let configs = r.new_configs(current)?;
            ctx.broker
                .alter_configs(resource, configs, validate_only)
                .await
        }
        .await;
        entries.push(r.entry().with_outcome(outcome));
    }
    entries
}

/// AlterConfigs: replaces the resource's whole set of dynamic configs.
pub async fn handle_alter_configs(
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let responses = alter_each(ctx, &req.resources, req.validate_only).await;
    AlterConfigsResponse::default().with_responses(responses)
}

/// Applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) operations to a config set.
fn apply_operations(
    configs: &mut BTreeMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<(), ApiError> {
    for c in ops {
        let key = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            0 => {
                let v = value.ok_or_else(|| {
                    ApiError::new(
                        ResponseError::InvalidConfig,
                        format!("Null value for config {key}"),
                    )
                })?;
                configs.insert(key, v);
            }
            1 => {
                configs.remove(&key);
            }
            op @ (2 | 3) => {
                let existing = configs.get(&key).cloned().unwrap_or_default();
                let mut items: Vec<String> = existing
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                {
                    if op == 2 {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(key, items.join(","));
            }
            op => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {op}"),
                ))
            }
        }
    }
    Ok(())
}

/// IncrementalAlterConfigs: per-key operations on the current dynamic configs.
pub async fn handle_incremental_alter_configs(
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = alter_each(ctx, &req.resources, req.validate_only).await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::testing::{broker_with_topic, context};
    use kafka_protocol::messages::alter_configs_request::AlterableConfig as Replacement;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

    #[tokio::test]
    async fn a_missing_topic_is_unknown_whatever_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_topic(dir.path());
        let ctx = context(&broker, 1);
        let invalid = || Some(sb("not-a-number"));
        let request =
            AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(sb("missing"))
                .with_configs(vec![Replacement::default()
                    .with_name(sb("retention.ms"))
                    .with_value(invalid())])]);
        let response = handle_alter_configs(&ctx, request).await;
        assert_eq!(
            response.responses[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(sb("missing"))
                .with_configs(vec![op("retention.ms", 0, Some("not-a-number"))]),
        ]);
        let response = handle_incremental_alter_configs(&ctx, request).await;
        assert_eq!(
            response.responses[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(sb(name))
            .with_config_operation(operation)
            .with_value(value.map(sb))
    }

    #[test]
    fn incremental_operations() {
        let mut configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "delete".to_string()),
            ("retention.ms".to_string(), "5".to_string()),
        ]);
        apply_operations(
            &mut configs,
            &[
                op("retention.ms", 1, None),
                op("segment.ms", 0, Some("100")),
                op("cleanup.policy", 2, Some("x,delete")),
            ],
        )
        .unwrap();
        assert_eq!(configs.get("retention.ms"), None);
        assert_eq!(configs["segment.ms"], "100");
        assert_eq!(configs["cleanup.policy"], "delete,x");
        apply_operations(&mut configs, &[op("cleanup.policy", 3, Some("delete"))]).unwrap();
        assert_eq!(configs["cleanup.policy"], "x");
        assert!(apply_operations(&mut configs, &[op("a", 9, None)]).is_err());
        assert!(apply_operations(&mut configs, &[op("a", 0, None)]).is_err());
    }
}
