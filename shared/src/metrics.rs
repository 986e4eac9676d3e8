//! CloudWatch Embedded Metric Format: one JSON line on stdout per flush, which CloudWatch Logs turns
//! into metrics without an API call from the function.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "PaymentLedger";

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns metric lines off for the whole process (benchmarks drive handlers millions of times).
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// (dimension name, dimension value); both `None` for the function-level set.
type DimensionKey = (Option<&'static str>, Option<String>);
/// metric name -> (value, unit)
type Series = BTreeMap<String, (f64, &'static str)>;

/// Counters (and millisecond timings) collected during one invocation, emitted as one EMF line per
/// distinct dimension set.
#[derive(Debug, Default)]
pub struct Metrics {
    function: &'static str,
    sets: BTreeMap<DimensionKey, Series>,
}

impl Metrics {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            sets: BTreeMap::new(),
        }
    }

    pub fn count(&mut self, name: &str, n: u64) {
        self.add(None, name, n as f64, "Count");
    }

    /// A count split by one dimension, e.g. `Failed` by `Code`.
    pub fn count_by(&mut self, name: &str, dimension: &'static str, value: &str, n: u64) {
        self.add(
            Some((dimension, value.to_string())),
            name,
            n as f64,
            "Count",
        );
    }

    pub fn millis(&mut self, name: &str, ms: f64) {
        self.add(None, name, ms, "Milliseconds");
    }

    /// A value in seconds (e.g. the dispatcher's `OutboxLagSeconds`).
    pub fn seconds(&mut self, name: &str, s: f64) {
        self.add(None, name, s, "Seconds");
    }

    fn add(&mut self, dim: Option<(&'static str, String)>, name: &str, v: f64, unit: &'static str) {
        let key = dim.map_or((None, None), |(d, val)| (Some(d), Some(val)));
        let entry = self
            .sets
            .entry(key)
            .or_default()
            .entry(name.to_string())
            .or_insert((0.0, unit));
        entry.0 += v;
    }

    /// The EMF documents, one per dimension set.
    pub fn documents(&self) -> Vec<Value> {
        let ts = chrono::Utc::now().timestamp_millis();
        self.sets
            .iter()
            .map(|((dim, dim_value), metrics)| {
                let mut dims = vec!["Function"];
                let mut doc = Map::new();
                doc.insert("Function".into(), json!(self.function));
                if let (Some(d), Some(v)) = (dim, dim_value) {
                    dims.push(d);
                    doc.insert((*d).into(), json!(v));
                }
                let defs: Vec<Value> = metrics
                    .iter()
                    .map(|(name, (_, unit))| json!({"Name": name, "Unit": unit}))
                    .collect();
                for (name, (value, _)) in metrics {
                    doc.insert(name.clone(), json!(value));
                }
                doc.insert(
                    "_aws".into(),
                    json!({"Timestamp": ts, "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dims], "Metrics": defs}]}),
                );
                Value::Object(doc)
            })
            .collect()
    }

    /// Writes the EMF lines to stdout (where Lambda sends them to CloudWatch Logs).
    pub fn flush(&mut self) {
        if ENABLED.load(Ordering::Relaxed) {
            for doc in self.documents() {
                println!("{doc}");
            }
        }
        self.sets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_declare_their_metrics() {
        let mut m = Metrics::new("processor");
        m.count("Posted", 3);
        m.count("Posted", 2);
        m.count_by("Failed", "Code", "insufficient_funds", 1);
        m.millis("BatchLatency", 12.5);
        let docs = m.documents();
        assert_eq!(docs.len(), 2);
        let plain = &docs[0];
        assert_eq!(plain["Posted"], json!(5.0));
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        let by_code = &docs[1];
        assert_eq!(by_code["Code"], json!("insufficient_funds"));
        assert_eq!(
            by_code["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Code"]])
        );
        assert_eq!(
            by_code["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            json!("Failed")
        );
    }
}
