//! Runtime parameters (per vhost, by component: federation upstreams, shovels...) and global
//! parameters (`cluster_name`...), kept as RabbitMQ exports them. Warren has none of the
//! plugins that read runtime parameters; it stores them so definitions move between RabbitMQ
//! and Warren without loss.

use super::{Metadata, State};
use crate::store::{MetaKind, MetaRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(super) const GLOBAL_PARAMETER: MetaKind = b'g';
pub(super) const PARAMETER: MetaKind = b'r';

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalParameter {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub value: Value,
    pub vhost: String,
    pub component: String,
    pub name: String,
}

fn parameter_key(vhost: &str, component: &str, name: &str) -> String {
    format!("{vhost}\0{component}\0{name}")
}

impl Metadata {
    pub fn global_parameters(&self) -> Vec<GlobalParameter> {
        self.read()
            .globals
            .iter()
            .map(|(name, value)| GlobalParameter {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }

    pub fn global_parameter(&self, name: &str) -> Option<Value> {
        self.read().globals.get(name).cloned()
    }

    /// Sets a global parameter; true if it is new.
    pub fn set_global_parameter(&self, p: GlobalParameter) -> bool {
        self.persist(GLOBAL_PARAMETER, p.name.clone(), &p);
        self.write().globals.insert(p.name, p.value).is_none()
    }

    pub fn clear_global_parameter(&self, name: &str) -> bool {
        let removed = self.write().globals.remove(name).is_some();
        if removed {
            self.forget(GLOBAL_PARAMETER, name.to_owned());
        }
        removed
    }

    /// Every runtime parameter, by vhost, component and name.
    pub fn parameters(&self) -> Vec<Parameter> {
        self.read().parameters.values().cloned().collect()
    }

    /// Sets a runtime parameter; true if it is new.
    pub fn set_parameter(&self, p: Parameter) -> bool {
        let key = (p.vhost.clone(), p.component.clone(), p.name.clone());
        self.persist(PARAMETER, parameter_key(&key.0, &key.1, &key.2), &p);
        self.write().parameters.insert(key, p).is_none()
    }

    pub fn clear_parameter(&self, vhost: &str, component: &str, name: &str) -> bool {
        let key = (vhost.to_owned(), component.to_owned(), name.to_owned());
        let removed = self.write().parameters.remove(&key).is_some();
        if removed {
            self.forget(PARAMETER, parameter_key(vhost, component, name));
        }
        removed
    }

    /// Drops a deleted vhost's runtime parameters (the caller holds the state).
    pub(super) fn drop_parameters(&self, state: &mut State, vhost: &str) {
        let gone: Vec<_> = state
            .parameters
            .keys()
            .filter(|(v, _, _)| v == vhost)
            .cloned()
            .collect();
        for key in gone {
            state.parameters.remove(&key);
            self.forget(PARAMETER, parameter_key(&key.0, &key.1, &key.2));
        }
    }
}

impl State {
    pub(super) fn load_parameter(&mut self, r: &MetaRecord) -> Result<(), String> {
        let text = |e: serde_json::Error| e.to_string();
        if r.kind == GLOBAL_PARAMETER {
            let p: GlobalParameter = serde_json::from_slice(&r.value).map_err(text)?;
            self.globals.insert(p.name, p.value);
        } else {
            let p: Parameter = serde_json::from_slice(&r.value).map_err(text)?;
            let key = (p.vhost.clone(), p.component.clone(), p.name.clone());
            self.parameters.insert(key, p);
        }
        Ok(())
    }
}
