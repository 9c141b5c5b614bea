//! Label and field selectors as the API server reads them from a list or watch request.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
}

/// A parsed label selector (`a=b,c!=d,e,!f,g in (h,i)`); empty selects everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels(Vec<Requirement>);

impl Labels {
    pub fn parse(text: &str) -> Result<Labels, String> {
        let mut requirements = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // `in (…)` holds commas: take it whole.
            let end = match rest.find(" in (") {
                Some(at) if rest[..at].find(',').is_none() => {
                    rest[at..].find(')').map(|close| at + close + 1)
                }
                _ => None,
            }
            .unwrap_or_else(|| rest.find(',').unwrap_or(rest.len()));
            let part = rest[..end].trim();
            rest = rest[end..].trim_start_matches(',').trim();
            requirements.push(requirement(part)?);
        }
        Ok(Labels(requirements))
    }

    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|w| w == v)),
        })
    }
}

fn requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: {part:?}");
    if let Some((key, values)) = part.split_once(" in ") {
        let values = values
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(bad)?;
        return Ok(Requirement::In(
            key.trim().to_owned(),
            values.split(',').map(|v| v.trim().to_owned()).collect(),
        ));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key.trim().into(),
            value.trim().into(),
        ));
    }
    if let Some((key, value)) = part.split_once('=') {
        let value = value.trim_start_matches('=');
        return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::Absent(key.trim().into()));
    }
    if part.contains([' ', '(', ')']) {
        return Err(bad());
    }
    Ok(Requirement::Exists(part.into()))
}

/// A parsed field selector (`metadata.name=x,involvedObject.kind=Pod`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(String, String, bool)>);

impl Fields {
    pub fn parse(text: &str) -> Result<Fields, String> {
        let mut fields = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, value, equal) = match part.split_once("!=") {
                Some((p, v)) => (p, v, false),
                None => {
                    let (p, v) = part
                        .split_once('=')
                        .ok_or_else(|| format!("invalid field selector: {part:?}"))?;
                    (p, v.trim_start_matches('='), true)
                }
            };
            fields.push((path.trim().to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Fields(fields))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, value, equal)| {
            let found = path
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (found == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_select() {
        let labels = json!({"a": "1", "b": "2"});
        let sel = Labels::parse("a=1,b!=3,!c,b in (2, 5)").expect("parse");
        assert!(sel.matches(Some(&labels)));
        assert!(!Labels::parse("a==2").expect("parse").matches(Some(&labels)));
        assert!(Labels::parse("").expect("parse").matches(None));
        assert!(Labels::parse("a in (1").is_err());
        let pod = json!({"metadata": {"name": "x", "namespace": "n"}});
        assert!(
            Fields::parse("metadata.name=x")
                .expect("parse")
                .matches(&pod)
        );
        assert!(
            !Fields::parse("metadata.name!=x")
                .expect("parse")
                .matches(&pod)
        );
        assert!(Fields::parse("metadata.name").is_err());
    }
}
