//! Parquet ↔ JSON lines, through arrow's JSON reader and writer.

use std::sync::Arc;

use bytes::Bytes;

/// A conversion that failed, saying which step.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub(crate) struct ConvertError {
    step: &'static str,
    message: String,
}

fn failed(step: &'static str) -> impl FnOnce(String) -> ConvertError {
    move |message| ConvertError { step, message }
}

/// Convert JSON lines to a Parquet file (schema inferred from all the lines).
pub(crate) fn jsonl_to_parquet(jsonl: &[u8]) -> Result<Vec<u8>, ConvertError> {
    let (schema, _) =
        arrow_json::reader::infer_json_schema_from_seekable(std::io::Cursor::new(jsonl), None).map_err(|e| failed("infer schema")(e.to_string()))?;
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(schema.clone()).build(std::io::Cursor::new(jsonl)).map_err(|e| failed("read JSON")(e.to_string()))?;
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).map_err(|e| failed("Parquet writer")(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| failed("read JSON")(e.to_string()))?;
        writer.write(&batch).map_err(|e| failed("write Parquet")(e.to_string()))?;
    }
    writer.close().map_err(|e| failed("finish Parquet")(e.to_string()))?;
    Ok(out)
}

/// Rows of a Parquet file as JSON lines.
pub(crate) fn parquet_to_jsonl(bytes: Bytes) -> Result<Vec<Vec<u8>>, ConvertError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| failed("not a Parquet file")(e.to_string()))?;
    let mut lines = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| failed("read Parquet")(e.to_string()))?;
        let mut buf = Vec::new();
        {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
            w.write(&batch).map_err(|e| failed("to JSON")(e.to_string()))?;
            w.finish().map_err(|e| failed("to JSON")(e.to_string()))?;
        }
        lines.extend(buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parquet_round_trip_keeps_rows() {
        let jsonl = b"{\"key\":\"a\",\"count\":1}\n{\"key\":\"b\",\"count\":2}\n";
        let pq = super::jsonl_to_parquet(jsonl).expect("to parquet");
        assert_eq!(&pq[..4], b"PAR1");
        let back = super::parquet_to_jsonl(bytes::Bytes::from(pq)).expect("from parquet");
        let rows: Vec<serde_json::Value> = back.iter().map(|l| serde_json::from_slice(l).expect("json")).collect();
        assert_eq!(rows, vec![serde_json::json!({"key": "a", "count": 1}), serde_json::json!({"key": "b", "count": 2})]);
        // The same input gives the same bytes (a repeated commit rewrites an identical object).
        assert_eq!(super::jsonl_to_parquet(jsonl).expect("again"), super::jsonl_to_parquet(jsonl).expect("again"));
    }
}
