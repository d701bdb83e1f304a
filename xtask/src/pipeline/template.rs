//! Reads template.yaml: the local stack creates what it declares, and the
//! tests check what the linters miss.

use anyhow::{anyhow, Context, Result};
pub use serde_norway::Value;
use std::path::Path;

pub struct Template(pub Value);

impl Template {
    pub fn load(root: &Path) -> Result<Template> {
        let text =
            std::fs::read_to_string(root.join("template.yaml")).context("reading template.yaml")?;
        Ok(Template(
            serde_norway::from_str(&text).context("parsing template.yaml")?,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// CloudFormation's short tags read as tagged values (as serde_yaml
    /// read them), in every form template.yaml uses them.
    #[test]
    fn short_tags_parse_as_tagged_values() {
        let text = "A: !Ref Param\nB: !Sub '${AWS::StackName}-x'\nC: !GetAtt Queue.Arn\n\
                    D: !If [Cond, 1, !Ref AWS::NoValue]\nE: !Equals [!Ref P, '']\n";
        let v: Value = serde_norway::from_str(text).unwrap();
        let tag = |k: &str| match &v[k] {
            Value::Tagged(t) => (t.tag.to_string(), t.value.clone()),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(tag("A"), ("!Ref".into(), Value::from("Param")));
        assert_eq!(tag("B").0, "!Sub");
        assert_eq!(tag("C"), ("!GetAtt".into(), Value::from("Queue.Arn")));
        let (t, d) = tag("D");
        assert_eq!(t, "!If");
        assert!(matches!(&d[2], Value::Tagged(r) if r.tag == "!Ref"));
        assert_eq!(tag("E").0, "!Equals");
    }

    /// The real template: every `!Tag` in the text is a tagged value.
    #[test]
    fn every_short_tag_of_the_template_is_read() {
        fn count(v: &Value) -> usize {
            match v {
                Value::Tagged(t) => 1 + count(&t.value),
                Value::Sequence(s) => s.iter().map(count).sum(),
                Value::Mapping(m) => m.values().map(count).sum(),
                _ => 0,
            }
        }
        let root = crate::pipeline::workspace_root();
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        let in_text = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| {
                // ` !Tag` or `[!Tag`: a short tag starts with a capital.
                let b = l.as_bytes();
                (1..b.len().saturating_sub(1))
                    .filter(|&i| b[i] == b'!' && matches!(b[i - 1], b' ' | b'['))
                    .filter(|&i| b[i + 1].is_ascii_uppercase())
                    .count()
            })
            .sum::<usize>();
        let t = Template::load(&root).unwrap();
        assert!(in_text > 20, "{in_text}");
        assert_eq!(count(&t.0), in_text);
        let max = &t.props("WebhookQueue").unwrap()["RedrivePolicy"]["maxReceiveCount"];
        assert!(t.resolve(max).is_some());
    }
}
