//! The vendor's read-only SQL endpoint over the stored tables.
//!
//! Only one `SELECT` or `WITH` query is run: the text is parsed first and anything else (DDL,
//! DML, `COPY`, `EXPLAIN`, `SET`, several statements) is refused; DataFusion's own SQL options
//! refuse DDL, DML and statements again when planning. Results stop at `sql_row_limit` rows
//! (`truncated` says so) and the query is cancelled after `sql_timeout_ms`. No file can be named
//! (URL tables are off). The k rule is **not** applied here: raw SQL is reserved to the vendor
//! role, which already controls the pseudonymous store (see the README).

use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
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
        Statement::Statement(statement) if matches!(**statement, SqlStatement::Query(_)) => Ok(()),
        _ => Err(ReportingError::QueryRefused(
            "only SELECT or WITH queries are allowed".to_owned(),
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

/// Runs one checked query with the row limit and timeout.
pub(crate) async fn run(state: &AppState, query: &str) -> Result<SqlResult, ReportingError> {
    check(query)?;
    let limit = state.inner.config.sql_row_limit;
    let timeout = Duration::from_millis(state.inner.config.sql_timeout_ms);
    let context = state.inner.warehouse.context().await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let work = async {
        let frame = context.sql_with_options(query, options).await?;
        let frame = frame.limit(0, Some(limit.saturating_add(1)))?;
        let columns: Vec<String> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = frame.collect().await?;
        Ok::<_, ReportingError>((columns, batches))
    };
    let (columns, batches) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ReportingError::Timeout)??;
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
        ] {
            assert!(
                matches!(check(bad), Err(ReportingError::QueryRefused(_))),
                "{bad}"
            );
        }
    }
}
