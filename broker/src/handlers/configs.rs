//! Configuration APIs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics
//! and brokers.

use std::collections::BTreeMap;
use tributary_metadata::ResponseError;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::*;

use super::{sb, RequestContext};
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

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<String>>,
    req: &DescribeConfigsRequest,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let image = broker.metadata.image();
    let Some(topic) = image.topics.get(name) else {
        return Err(ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
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

fn describe_broker(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<String>>,
    req: &DescribeConfigsRequest,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
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
                BROKER => describe_broker(&ctx.broker, &r.resource_name, &keys, &req),
                other => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match configs {
                Ok(configs) => result.with_configs(configs),
                Err(e) => result
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(sb(e.message))),
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
            .ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                )
            }),
        ConfigResource::Broker(Some(id)) => {
            Ok(image.broker_configs.get(id).cloned().unwrap_or_default())
        }
        ConfigResource::Broker(None) => Ok(image.cluster_configs.clone()),
    }
}

/// Resolves the resource, computes its new dynamic config set, and has the controller
/// apply it (both AlterConfigs flavours end here).
async fn alter_resource(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    new_configs: impl FnOnce(&ConfigResource) -> Result<BTreeMap<String, String>, ApiError>,
) -> Result<(), ApiError> {
    let resource = scope(&ctx.broker, resource_type, name)?;
    let configs = new_configs(&resource)?;
    ctx.broker
        .alter_configs(resource, configs, validate_only)
        .await
}

/// AlterConfigs: replaces the resource's whole set of dynamic configs.
pub async fn handle_alter_configs(
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let configs: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let result = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let outcome = alter_resource(
            ctx,
            r.resource_type,
            &r.resource_name,
            req.validate_only,
            |_| Ok(configs),
        )
        .await;
        responses.push(match outcome {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.wire_code())
                .with_error_message(Some(sb(e.message))),
        });
    }
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
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let result = IncrementalResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let outcome = alter_resource(
            ctx,
            r.resource_type,
            &r.resource_name,
            req.validate_only,
            |resource| {
                let mut configs = current_configs(&ctx.broker, resource)?;
                apply_operations(&mut configs, &r.configs)?;
                Ok(configs)
            },
        )
        .await;
        responses.push(match outcome {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.wire_code())
                .with_error_message(Some(sb(e.message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

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
