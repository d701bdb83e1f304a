//! Reads template.yaml: the local stack creates what it declares, and the
//! tests check what the linters miss.

use anyhow::{anyhow, Context, Result};
pub use serde_yaml::Value;
use std::path::Path;

pub struct Template(pub Value);

impl Template {
    pub fn load(root: &Path) -> Result<Template> {
        let text =
            std::fs::read_to_string(root.join("template.yaml")).context("reading template.yaml")?;
        Ok(Template(
            serde_yaml::from_str(&text).context("parsing template.yaml")?,
        ))
    }

    pub fn resource(&self, name: &str) -> Result<&Value> {
        self.0
            .get("Resources")
            .and_then(|r| r.get(name))
            .ok_or_else(|| anyhow!("template.yaml has no resource {name}"))
    }

    pub fn props(&self, name: &str) -> Result<&Value> {
        self.resource(name)?
            .get("Properties")
            .ok_or_else(|| anyhow!("{name} has no Properties"))
    }

    /// A parameter's default, as text.
    pub fn default(&self, param: &str) -> Result<String> {
        let v = self
            .0
            .get("Parameters")
            .and_then(|p| p.get(param))
            .and_then(|p| p.get("Default"))
            .ok_or_else(|| anyhow!("parameter {param} has no default"))?;
        scalar(v).ok_or_else(|| anyhow!("{param} default is not a scalar"))
    }

    /// A property value with `!Ref Param` resolved to the parameter's default.
    pub fn resolve(&self, v: &Value) -> Option<String> {
        if let Value::Tagged(t) = v {
            if t.tag == "!Ref" {
                return t.value.as_str().and_then(|p| self.default(p).ok());
            }
            return None;
        }
        scalar(v)
    }
}

pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
