//! Collects sections of rows and prints them as aligned tables.

use serde_json::{Value, json};

pub struct Section {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

#[derive(Default)]
pub struct Report {
    pub machine: String,
    pub sections: Vec<Section>,
}

impl Report {
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_default();
        Self {
            machine: format!("{cpus} CPUs ({model})"),
            sections: Vec::new(),
        }
    }

    pub fn section(&mut self, title: &str, columns: &[&str]) -> &mut Section {
        self.sections.push(Section {
            title: title.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        });
        self.sections.last_mut().expect("just pushed")
    }

    pub fn print(&self) {
        println!("\nmachine: {}", self.machine);
        for s in &self.sections {
            println!("\n== {}", s.title);
            let widths: Vec<usize> = (0..s.columns.len())
                .map(|i| {
                    s.rows
                        .iter()
                        .map(|r| r.get(i).map_or(0, String::len))
                        .chain([s.columns[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:>w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            println!("{}", line(&s.columns));
            for r in &s.rows {
                println!("{}", line(r));
            }
            for n in &s.notes {
                println!("  - {n}");
            }
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "machine": self.machine,
            "sections": self.sections.iter().map(|s| json!({
                "title": s.title,
                "rows": s.rows.iter().map(|r| {
                    s.columns.iter().cloned().zip(r.iter().cloned().map(Value::String))
                        .collect::<serde_json::Map<String, Value>>()
                }).collect::<Vec<_>>(),
                "notes": s.notes,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Section {
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// The q-quantile (0..=1) of durations in milliseconds.
pub fn quantile(sorted_ms: &[f64], q: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_ms.len() as f64 - 1.0) * q).round() as usize;
    sorted_ms[idx.min(sorted_ms.len() - 1)]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}
