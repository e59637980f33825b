//! The vendor's read-only SQL endpoint over the stored tables.
//!
//! Only one `SELECT` or `WITH` query is run: the text is parsed first and anything else (DDL,
//! DML, `COPY`, `EXPLAIN`, `SET`, several statements) is refused; DataFusion's own SQL options
//! refuse DDL, DML and statements again when planning. Results stop at `sql_row_limit` rows
//! (`truncated` says so) and the query is cancelled after `sql_timeout_ms`. No file can be named
//! (URL tables are off). The k rule is **not** applied here: raw SQL is reserved to the vendor
//! role, which already controls the pseudonymous store (see the README).

use std::ops::ControlFlow;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart,
    Statement as SqlStatement, visit_expressions,
};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use crate::ReportingError;

/// A query's answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SqlResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of JSON values.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows beyond the limit were cut.
    pub truncated: bool,
}

/// Refuses anything but a single read-only query.
pub(crate) fn check(query: &str) -> Result<(), ReportingError> {
    let statements = DFParser::parse_sql(query)
        .map_err(|_| ReportingError::QueryRefused("not valid SQL".to_owned()))?;
    if statements.len() != 1 {
        return Err(ReportingError::QueryRefused(
            "exactly one statement is allowed".to_owned(),
        ));
    }
    match &statements[0] {
        Statement::Statement(statement) if matches!(**statement, SqlStatement::Query(_)) => {
            match visit_expressions(&**statement, refuse_amplifier) {
                ControlFlow::Continue(()) => Ok(()),
                ControlFlow::Break(reason) => Err(ReportingError::QueryRefused(reason)),
            }
        }
        _ => Err(ReportingError::QueryRefused(
            "only SELECT or WITH queries are allowed".to_owned(),
        )),
    }
}

/// Functions whose output grows with a number argument (`repeat('a', 2147483647)` is 2 GB in
/// one value, computed in one call that no timeout interrupts) and the largest size allowed.
const AMPLIFIERS: [(&str, f64); 6] = [
    ("repeat", 10_000.0),
    ("lpad", 10_000.0),
    ("rpad", 10_000.0),
    ("array_repeat", 10_000.0),
    ("range", 1_000_000.0),
    ("generate_series", 1_000_000.0),
];

/// Functions whose output grows with the size of their inputs combined.
const COMBINERS: [&str; 10] = [
    "replace",
    "regexp_replace",
    "overlay",
    "translate",
    "concat",
    "concat_ws",
    "string_agg",
    "array_agg",
    "array_concat",
    "array_append",
];

/// Aggregates that pile their input up (as text or a list) rather than reduce it.
const PILING_AGGREGATES: [&str; 3] = ["string_agg", "array_agg", "listagg"];

/// Refuses a call of an [`AMPLIFIERS`] function unless its size arguments are number literals
/// within the bound (for `range`, the span between its first two); an amplifier's output fed
/// into another amplifier or a [`COMBINERS`] function; and [`PILING_AGGREGATES`] over a window.
fn refuse_amplifier(expr: &Expr) -> ControlFlow<String> {
    let Expr::Function(function) = expr else {
        return ControlFlow::Continue(());
    };
    // The name as DataFusion resolves it: the last part's value, quoted or not.
    let name = match function.name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => ident.value.to_ascii_lowercase(),
        _ => function.name.to_string().to_ascii_lowercase(),
    };
    let amplifier = AMPLIFIERS.iter().find(|(known, _)| *known == name);
    let arguments_text = function.args.to_string().to_ascii_lowercase();
    let feeds_amplifier = AMPLIFIERS.iter().any(|(known, _)| {
        arguments_text.contains(&format!("{known}("))
            || arguments_text.contains(&format!("{known}\"("))
    });
    // Text built by one amplifier must not feed another function that multiplies or piles
    // it up (`repeat(repeat(..))`, `replace(repeat(..), 'a', repeat(..))`).
    if feeds_amplifier && (amplifier.is_some() || COMBINERS.contains(&name.as_str())) {
        return ControlFlow::Break(format!(
            "`{name}` cannot take the output of a size-growing function"
        ));
    }
    // A running aggregate of text keeps a growing copy per row: quadratic memory.
    if function.over.is_some() && PILING_AGGREGATES.contains(&name.as_str()) {
        return ControlFlow::Break(format!("`{name}` cannot be used as a window function here"));
    }
    let Some((name, bound)) = amplifier else {
        return ControlFlow::Continue(());
    };
    let literal = |arg: &FunctionArg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => expr.to_string().parse::<f64>().ok(),
        _ => None,
    };
    let args: &[FunctionArg] = match &function.args {
        FunctionArguments::List(list) => &list.args,
        _ => &[],
    };
    let size = if matches!(*name, "range" | "generate_series") {
        // `range(stop)`, `range(start, stop[, step])`.
        match args {
            [stop] => literal(stop).map(f64::abs),
            [start, stop, ..] => literal(start)
                .zip(literal(stop))
                .map(|(start, stop)| (stop - start).abs()),
            _ => None,
        }
    } else {
        // `repeat(text, count)`, `lpad(text, length[, fill])`, `array_repeat(value, count)`.
        args.get(1).and_then(literal).map(f64::abs)
    };
    match size {
        Some(size) if size <= *bound => ControlFlow::Continue(()),
        _ => ControlFlow::Break(format!(
            "`{name}` takes number literals here, sizing at most {bound}"
        )),
    }
}

fn json_column(column: &ArrayRef) -> Result<Vec<Value>, ReportingError> {
    let cast = |to: &DataType| {
        arrow::compute::cast(column, to).map_err(|error| ReportingError::Query(error.to_string()))
    };
    let missing = |what: &str| ReportingError::Query(what.to_owned());
    let out = match column.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let values = cast(&DataType::Int64)?;
            let values = values
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| missing("integer column"))?;
            json_values(values.iter())
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            let values = cast(&DataType::Float64)?;
            let values = values
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| missing("number column"))?;
            json_values(values.iter())
        }
        DataType::Boolean => {
            let values = column
                .as_boolean_opt()
                .ok_or_else(|| missing("boolean column"))?;
            json_values(values.iter())
        }
        _ => {
            let values = cast(&DataType::Utf8)?;
            let values = values
                .as_string_opt::<i32>()
                .ok_or_else(|| missing("column cannot be shown as text"))?;
            json_values(values.iter())
        }
    };
    Ok(out)
}

/// A column's values as JSON, nulls as `null`.
fn json_values<T: Into<Value>>(values: impl Iterator<Item = Option<T>>) -> Vec<Value> {
    values
        .map(|value| value.map_or(Value::Null, Into::into))
        .collect()
}

/// Largest result (in Arrow memory) turned into a JSON answer.
const MAX_RESULT_BYTES: usize = 64 << 20;

/// Runs one checked query with the row limit and timeout.
pub(crate) async fn run(state: &AppState, query: &str) -> Result<SqlResult, ReportingError> {
    if !state.inner.config.sql {
        return Err(ReportingError::QueryRefused(
            "raw SQL is off in this process: under `veil up` with its embedded broker a runaway \
             query would take messages not yet stored down with it (start `veil up --sql`, or \
             run `veil reporting` as its own service)"
                .to_owned(),
        ));
    }
    check(query)?;
    let limit = state.inner.config.sql_row_limit;
    let timeout = Duration::from_millis(state.inner.config.sql_timeout_ms);
    let context = state.inner.warehouse.context().await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let query = query.to_owned();
    let work = async move {
        // Run again, as the dashboards' queries are, when a compaction, erasure or retention run
        // replaced a file the query had listed (within the same timeout).
        let mut attempt = 1;
        loop {
            let result = async {
                let frame = context.sql_with_options(&query, options).await?;
                let frame = frame.limit(0, Some(limit.saturating_add(1)))?;
                let columns: Vec<String> = frame
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let batches = frame.collect().await?;
                Ok::<_, datafusion::error::DataFusionError>((columns, batches))
            }
            .await;
            match result {
                Err(error) if crate::data::retry_after_storage_change(&error, attempt).await => {
                    attempt += 1;
                }
                result => return result.map_err(ReportingError::from),
            }
        }
    };
    // On its own task, so the answer comes on time even while a kernel computes without
    // yielding; the task is aborted at its next yield.
    let mut task = tokio::spawn(work);
    let (columns, batches) = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(ReportingError::Query("the query failed".to_owned())),
        Err(_) => {
            task.abort();
            return Err(ReportingError::Timeout);
        }
    };
    let result_bytes: usize = batches
        .iter()
        .map(|batch| batch.get_array_memory_size())
        .sum();
    if result_bytes > MAX_RESULT_BYTES {
        return Err(ReportingError::QueryRefused(format!(
            "the result is larger than {} MB: aggregate or filter more",
            MAX_RESULT_BYTES >> 20
        )));
    }
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for batch in &batches {
        let converted: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(json_column)
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(converted.iter().map(|column| column[row].clone()).collect());
        }
    }
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok(SqlResult {
        columns,
        rows,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_read_only_query_passes() {
        for good in [
            "SELECT 1",
            "with x as (select 1 as a) select a from x",
            "SELECT count(*) FROM events WHERE tenant = 't-1000'",
            "select repeat('ab', 3), lpad('7', 3, '0'), range(1, 10)",
        ] {
            check(good).expect(good);
        }
        for bad in [
            "DROP TABLE events",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
            "COPY (SELECT 1) TO '/tmp/x.parquet'",
            "INSERT INTO events VALUES (1)",
            "SELECT 1; SELECT 2",
            "EXPLAIN SELECT 1",
            "SET datafusion.execution.batch_size = 1",
            "select",
            "",
            "select repeat('a', 2147483647)",
            "select lpad(x, 100000000) from (select 'a' as x)",
            "select rpad('a', count(*)) from events",
            "select range(1, 10000000000)",
            "select array_repeat(1, 1e9)",
            "select \"repeat\"('a', 500000000)",
            "select \"lpad\"('a', 20000)",
            "select repeat(repeat('a', 10000), 10000)",
            "select replace(repeat('a', 10000), 'a', repeat('b', 10000))",
            "select max(length(s)) from (select string_agg(repeat('x', 10), '') over (order by value) s from generate_series(1, 20000))",
            "select string_agg(message_id, '') over (order by received_at) from events",
        ] {
            assert!(
                matches!(check(bad), Err(ReportingError::QueryRefused(_))),
                "{bad}"
            );
        }
    }
}
