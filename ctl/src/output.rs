//! Printing as rabbitmqctl prints: a banner line (`Listing queues for vhost / ...`), then a
//! header and tab-separated rows, with its value formats (tags as `[administrator]`, argument
//! tables as `[{"x-max-length",5}]`); or the same rows as JSON (its layout, argument tables as
//! `[name, type, value]` triples), CSV, or a drawn table.

use crate::cli::{Formatter, Global};
use serde_json::{Map, Value};
use std::fmt::Write;

/// How the output looks, from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub formatter: Formatter,
    pub banner: bool,
    pub headers: bool,
}

impl Style {
    pub fn of(g: &Global) -> Self {
        Self {
            formatter: g.formatter,
            // JSON and CSV are for programs: no banner, as rabbitmqctl.
            banner: !(g.quiet || g.silent) && g.formatter == Formatter::Table,
            headers: !(g.silent || g.no_table_headers),
        }
    }

    /// A line saying what the command does, on stdout, unless quiet.
    pub fn banner(&self, text: &str) {
        if self.banner {
            println!("{text}");
        }
    }
}

/// Whether a column holds an AMQP field table (arguments, client properties), which
/// rabbitmqctl prints in its own way.
fn is_table_column(name: &str) -> bool {
    matches!(name, "arguments" | "client_properties")
}

/// Whether a column holds a parameter's or limit's value, which rabbitmqctl prints as JSON.
fn is_json_column(name: &str) -> bool {
    matches!(name, "value" | "definition" | "limits")
}

/// A list to print: columns and rows of JSON values.
pub struct Listing {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Listing {
    pub fn print(&self, style: &Style) {
        print!("{}", self.render(style));
    }

    pub fn render(&self, style: &Style) -> String {
        match style.formatter {
            Formatter::Table => self.tabs(style.headers),
            Formatter::Json => self.json(),
            Formatter::Csv => self.csv(style.headers),
            Formatter::PrettyTable => self.drawn(),
        }
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&self.columns)
                    .map(|(v, c)| match is_json_column(c) {
                        true => v.to_string(),
                        false => plain(v, is_table_column(c)),
                    })
                    .collect()
            })
            .collect()
    }

    fn tabs(&self, headers: bool) -> String {
        let mut out = String::new();
        if headers && !self.rows.is_empty() {
            let _ = writeln!(out, "{}", self.columns.join("\t"));
        }
        for row in self.cells() {
            let _ = writeln!(out, "{}", row.join("\t"));
        }
        out
    }

    fn json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, row) in self.rows.iter().enumerate() {
            // Written by hand to keep the columns' order.
            let fields: Vec<String> = self
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| {
                    let value = match is_table_column(column) {
                        true => typed_table(value),
                        false => value.clone(),
                    };
                    format!("{}:{value}", Value::from(column.as_str()))
                })
                .collect();
            let sep = if i == 0 { "" } else { "," };
            let _ = writeln!(out, "{sep}{{{}}}", fields.join(","));
        }
        out.push_str("]\n");
        out
    }

    fn csv(&self, headers: bool) -> String {
        let quote = |s: &str| match s.contains([',', '"', '\n']) {
            true => format!("\"{}\"", s.replace('"', "\"\"")),
            false => s.to_owned(),
        };
        let mut out = String::new();
        if headers {
            let _ = writeln!(out, "{}", self.columns.join(","));
        }
        for row in self.cells() {
            let row: Vec<String> = row.iter().map(|c| quote(c)).collect();
            let _ = writeln!(out, "{}", row.join(","));
        }
        out
    }

    fn drawn(&self) -> String {
        let cells = self.cells();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule = |left: &str, mid: &str, right: &str| {
            let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
            format!("{left}{}{right}\n", parts.join(mid))
        };
        let line = |values: &[String]| {
            let parts: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!(" {v}{} ", " ".repeat(w - v.chars().count())))
                .collect();
            format!("│{}│\n", parts.join("│"))
        };
        let mut out = rule("┌", "┬", "┐");
        out.push_str(&line(&self.columns));
        out.push_str(&rule("├", "┼", "┤"));
        for row in &cells {
            out.push_str(&line(row));
        }
        out.push_str(&rule("└", "┴", "┘"));
        out
    }
}

/// A value as rabbitmqctl's table shows it.
pub fn plain(value: &Value, field_table: bool) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| plain(v, false)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) if field_table || o.is_empty() => erlang_table(o),
        other => other.to_string(),
    }
}

/// A field table the way rabbitmqctl prints one: `[{"key",value}, ...]`, nested tables alike.
fn erlang_table(table: &Map<String, Value>) -> String {
    let pairs: Vec<String> = table
        .iter()
        .map(|(k, v)| format!("{{\"{k}\",{}}}", erlang_value(v)))
        .collect();
    format!("[{}]", pairs.join(","))
}

fn erlang_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(o) => erlang_table(o),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(erlang_value).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// A field table as rabbitmqctl's JSON shows it: `[name, type, value]` triples.
fn typed_table(value: &Value) -> Value {
    let Value::Object(table) = value else {
        return Value::Array(Vec::new());
    };
    Value::Array(
        table
            .iter()
            .map(|(k, v)| {
                let (kind, v) = match v {
                    Value::String(_) => ("longstr", v.clone()),
                    Value::Bool(_) => ("bool", v.clone()),
                    Value::Number(n) if n.is_f64() => ("double", v.clone()),
                    Value::Number(_) => ("long", v.clone()),
                    Value::Object(_) => ("table", typed_table(v)),
                    Value::Array(_) => ("array", v.clone()),
                    Value::Null => ("void", v.clone()),
                };
                Value::Array(vec![Value::from(k.as_str()), Value::from(kind), v])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing() -> Listing {
        Listing {
            columns: vec!["name".into(), "arguments".into()],
            rows: vec![
                vec![json!("q1"), json!({"x-max-length": 5, "k": "v"})],
                vec![json!("q2"), json!({})],
            ],
        }
    }

    fn style(formatter: Formatter) -> Style {
        Style {
            formatter,
            banner: false,
            headers: true,
        }
    }

    #[test]
    fn tables_print_as_rabbitmqctl() {
        assert_eq!(
            listing().render(&style(Formatter::Table)),
            "name\targuments\nq1\t[{\"k\",\"v\"},{\"x-max-length\",5}]\nq2\t[]\n"
        );
        assert_eq!(
            plain(&json!(["monitoring", "policymaker"]), false),
            "[monitoring, policymaker]"
        );
    }

    #[test]
    fn json_lists_rows_with_typed_tables() {
        assert_eq!(
            listing().render(&style(Formatter::Json)),
            "[\n{\"name\":\"q1\",\"arguments\":[[\"k\",\"longstr\",\"v\"],[\"x-max-length\",\"long\",5]]}\n,{\"name\":\"q2\",\"arguments\":[]}\n]\n"
        );
    }

    #[test]
    fn csv_and_drawn_tables() {
        let csv = listing().render(&style(Formatter::Csv));
        assert!(csv.starts_with("name,arguments\nq1,\"[{\"\"k\"\""));
        let drawn = listing().render(&style(Formatter::PrettyTable));
        assert!(drawn.starts_with("┌──────┬"));
    }
}
