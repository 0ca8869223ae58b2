//! Prometheus text: the node's figures (`/metrics`), sans-io. The node gives its own
//! figures through a [`Source`]; the desktop adds its sessions and logins.

use std::fmt::Write as _;
use std::sync::Arc;

/// Whether a metric only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (resets when the node restarts).
    Counter,
    /// Any value.
    Gauge,
    /// Counts of observations at most each bound (samples `_bucket` with `le`, `_sum`,
    /// `_count`).
    Histogram,
}

/// One value of a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Added to the metric's name: `_bucket`, `_sum`, `_count` for a histogram, else empty.
    pub suffix: &'static str,
    /// Its labels.
    pub labels: Vec<(&'static str, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// A sample of the metric itself (no suffix).
    pub fn new(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample {
            suffix: "",
            labels,
            value,
        }
    }
}

/// One metric with its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// Its name, `plexus_…`.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its samples.
    pub samples: Vec<Sample>,
}

impl Family {
    /// A metric of one sample without labels.
    pub fn one(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Family {
        Family {
            name,
            help,
            kind,
            samples: vec![Sample::new(Vec::new(), value)],
        }
    }
}

/// What the node measures, asked for at each scrape.
pub type Source = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;

/// A label value with `\`, `"` and line breaks escaped, as the text format wants.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The families in the Prometheus text exposition format (version 0.0.4).
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for Sample {
            suffix,
            labels,
            value,
        } in &f.samples
        {
            out.push_str(f.name);
            out.push_str(suffix);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escaped(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", inner.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_as_prometheus_text() {
        let text = render(&[
            Family::one("plexus_up", "Whether the node runs.", Kind::Gauge, 1.0),
            Family {
                name: "plexus_nodes",
                help: "Nodes by health.",
                kind: Kind::Gauge,
                samples: vec![Sample::new(vec![("health", "al\"ive".into())], 3.0)],
            },
        ]);
        assert_eq!(
            text,
            "# HELP plexus_up Whether the node runs.\n# TYPE plexus_up gauge\nplexus_up 1\n\
             # HELP plexus_nodes Nodes by health.\n# TYPE plexus_nodes gauge\n\
             plexus_nodes{health=\"al\\\"ive\"} 3\n"
        );
    }
}
